#!/bin/sh
# Attach the offline volume, run a full backup into repo2 (or, with --drill, a restore drill from
# it), then detach it again so that nothing on the network can reach repo2 between runs.
# Install as /usr/local/sbin/chuong-offline-backup.sh (root, 0750); the volume's label is
# CHUONG_OFFLINE (set in /etc/fstab with noauto).
set -eu
MOUNT=/mnt/chuong-offline
mount "$MOUNT"
trap 'sync; umount "$MOUNT"' EXIT
if [ "${1:-}" = "--drill" ]; then
  # The drill needs the service's settings (database URL, audit key): /etc/chuong/.env, read from
  # the working directory (see chuong-backup.cron).
  runuser -u postgres -- sh -c 'cd /etc/chuong && exec chuong backup drill --repo=2'
else
  runuser -u postgres -- pgbackrest --stanza=chuong --repo=2 --type=full backup
  # Records when it ended (repo2 is readable only while mounted) for the stale-backup alert.
  runuser -u postgres -- sh -c 'set -a; . /etc/chuong/production.env; exec chuong backup record --repo=2' >/dev/null
fi

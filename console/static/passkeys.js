// Passkey ceremonies of the console (docs/security.md "Passkeys and security keys"). No inline
// script: a page holds [data-passkey-register] or [data-passkey-verify] and this file does the
// rest. Each ceremony asks the console for options (server-side, single-use challenge), runs
// navigator.credentials.create()/get(), and sends the browser's answer back as JSON. The
// base64url conversions are written out so that browsers without toJSON() work too.
(function () {
  "use strict";

  function toBytes(text) {
    var b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) { b64 += "="; }
    var raw = atob(b64), out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { out[i] = raw.charCodeAt(i); }
    return out.buffer;
  }

  function toText(buffer) {
    var bytes = new Uint8Array(buffer), raw = "";
    for (var i = 0; i < bytes.length; i++) { raw += String.fromCharCode(bytes[i]); }
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (d) {
      return {type: d.type, id: toBytes(d.id), transports: d.transports};
    });
  }

  function creationOptions(o) {
    var copy = Object.assign({}, o);
    copy.challenge = toBytes(o.challenge);
    copy.user = Object.assign({}, o.user, {id: toBytes(o.user.id)});
    copy.excludeCredentials = descriptors(o.excludeCredentials);
    return copy;
  }

  function requestOptions(o) {
    var copy = Object.assign({}, o);
    copy.challenge = toBytes(o.challenge);
    copy.allowCredentials = descriptors(o.allowCredentials);
    return copy;
  }

  function registrationJSON(c) {
    return {
      id: c.id, rawId: toText(c.rawId), type: c.type,
      authenticatorAttachment: c.authenticatorAttachment || null,
      response: {
        clientDataJSON: toText(c.response.clientDataJSON),
        attestationObject: toText(c.response.attestationObject),
        transports: c.response.getTransports ? c.response.getTransports() : []
      }
    };
  }

  function assertionJSON(c) {
    var r = c.response;
    return {
      id: c.id, rawId: toText(c.rawId), type: c.type,
      response: {
        clientDataJSON: toText(r.clientDataJSON),
        authenticatorData: toText(r.authenticatorData),
        signature: toText(r.signature),
        userHandle: r.userHandle ? toText(r.userHandle) : null
      }
    };
  }

  function post(root, url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": root.getAttribute("data-csrf")},
      body: JSON.stringify(body || {})
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) { throw new Error(data.message || root.getAttribute("data-failed")); }
        return data;
      });
    });
  }

  function fail(root, error) {
    var box = root.querySelector("[data-passkey-error]");
    // A cancelled or timed-out browser prompt is a DOMException: say it plainly, not its name.
    var message = error && error.name === "NotAllowedError" ? root.getAttribute("data-cancelled") : error.message;
    if (box) { box.textContent = message || root.getAttribute("data-failed"); box.hidden = false; }
  }

  var register = document.querySelector("[data-passkey-register]");
  if (register) {
    register.addEventListener("submit", function (event) {
      event.preventDefault();
      var base = register.getAttribute("data-base");
      var name = register.querySelector("[name=name]").value;
      var code = register.querySelector("[name=code]");
      post(register, base + "/passkeys/registration/options", {code: code ? code.value : ""})
        .then(function (started) {
          return navigator.credentials.create({publicKey: creationOptions(started.options)}).then(function (credential) {
            return post(register, base + "/passkeys/registration", {
              ceremony_id: started.ceremony_id, name: name, credential: registrationJSON(credential)
            });
          });
        })
        .then(function (done) { window.location.assign(done.redirect); })
        .catch(function (error) { fail(register, error); });
    });
  }

  var verify = document.querySelector("[data-passkey-verify]");
  if (verify) {
    verify.addEventListener("submit", function (event) {
      event.preventDefault();
      var base = verify.getAttribute("data-base");
      post(verify, base + "/passkeys/assertion/options", {})
        .then(function (started) {
          return navigator.credentials.get({publicKey: requestOptions(started.options)}).then(function (credential) {
            return post(verify, base + "/passkeys/assertion", {
              ceremony_id: started.ceremony_id, credential: assertionJSON(credential),
              next: verify.getAttribute("data-next") || "/"
            });
          });
        })
        .then(function (done) { window.location.assign(done.redirect); })
        .catch(function (error) { fail(verify, error); });
    });
  }
})();

"""breaking-news items, sections, workflow (issue 5)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 13:40:00
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# D-03: the sections every reader can follow, with their Vietnamese names and translations.
# The code is the topic string stored on devices; it never changes once readers follow it.
SEED_SECTIONS = [
    (
        "van-kien",
        {
            "vi": "Văn kiện",
            "en": "Documents",
            "zh": "文件",
            "fr": "Documents",
            "es": "Documentos",
            "ru": "Документы",
        },
    ),
    (
        "hoat-dong-lanh-dao",
        {
            "vi": "Hoạt động lãnh đạo Đảng, Nhà nước",
            "en": "Leadership activities of Party and State",
            "zh": "党和国家领导活动",
            "fr": "Activités des dirigeants du Parti et de l'État",
            "es": "Actividades de los dirigentes del Partido y del Estado",
            "ru": "Деятельность руководителей Партии и государства",
        },
    ),
    (
        "tu-lieu-hoc-tap",
        {
            "vi": "Tư liệu học tập",
            "en": "Study materials",
            "zh": "学习资料",
            "fr": "Documents d'étude",
            "es": "Materiales de estudio",
            "ru": "Учебные материалы",
        },
    ),
    (
        "bao-ve-nen-tang-tu-tuong",
        {
            "vi": "Bảo vệ nền tảng tư tưởng của Đảng",
            "en": "Protecting the Party's ideological foundation",
            "zh": "保护党的思想基础",
            "fr": "Protéger le fondement idéologique du Parti",
            "es": "Proteger el fundamento ideológico del Partido",
            "ru": "Защита идеологической основы Партии",
        },
    ),
    (
        "hoc-tap-lam-theo-bac",
        {
            "vi": "Học tập và làm theo tư tưởng, đạo đức, phong cách Hồ Chí Minh",
            "en": "Studying and following Ho Chi Minh's thought, ethics and style",
            "zh": "学习和践行胡志明思想、道德、作风",
            "fr": "Étudier et suivre la pensée, l'éthique et le style de Hô Chi Minh",
            "es": "Estudiar y seguir el pensamiento, la ética y el estilo de Ho Chi Minh",
            "ru": "Изучение и следование идеям, морали и стилю Хо Ши Мина",
        },
    ),
]


def upgrade() -> None:
    # Devices: the region and the comparable app version that breaking-news audiences filter on.
    op.add_column("devices", sa.Column("province", sa.String(length=32), nullable=True))
    op.add_column("devices", sa.Column("app_version_code", sa.BigInteger(), nullable=True))
    op.create_table(
        "account_topics",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("app", sa.String(length=16), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_account_topics_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "app", "topic", name=op.f("pk_account_topics")),
    )
    # Notifications: a recalled push's inbox item shows as withdrawn; cancelled deliveries count.
    op.add_column("notifications", sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "notifications", sa.Column("cancelled", sa.Integer(), server_default=sa.text("0"), nullable=False)
    )

    sections = op.create_table(
        "news_sections",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("unit_id", sa.Uuid(), nullable=True),
        sa.Column("names", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("position", sa.Integer(), server_default=sa.text("100"), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["units.id"], name=op.f("fk_news_sections_unit_id_units"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_news_sections")),
        sa.UniqueConstraint("code", name=op.f("uq_news_sections_code")),
    )
    op.bulk_insert(
        sections,
        [
            {
                "id": uuid.uuid5(uuid.NAMESPACE_URL, f"chuong:section:{code}"),
                "code": code,
                "names": names,
                "position": index,
            }
            for index, (code, names) in enumerate(SEED_SECTIONS)
        ],
    )
    op.create_table(
        "news_items",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("unit_id", sa.Uuid(), nullable=False),
        sa.Column("author_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default=sa.text("'draft'"), nullable=False),
        sa.Column("article_id", sa.String(length=128), nullable=False),
        sa.Column("deep_link", sa.String(length=2048), nullable=False),
        sa.Column("image_url", sa.String(length=2048), nullable=True),
        sa.Column("title", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("body", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("language_policy", sa.String(length=16), nullable=False),
        sa.Column("audience", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("ttl_seconds", sa.Integer(), nullable=False),
        sa.Column("collapse_key", sa.String(length=64), nullable=False),
        sa.Column("send_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("submitted_by", sa.Uuid(), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("approved_by", sa.Uuid(), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rejected_reason", sa.String(length=1000), nullable=True),
        sa.Column("notification_id", sa.Uuid(), nullable=True),
        sa.Column("retract_notification_id", sa.Uuid(), nullable=True),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recalled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"], name=op.f("fk_news_items_unit_id_units")),
        sa.ForeignKeyConstraint(["author_id"], ["users.id"], name=op.f("fk_news_items_author_id_users")),
        sa.ForeignKeyConstraint(
            ["notification_id"],
            ["notifications.id"],
            name=op.f("fk_news_items_notification_id_notifications"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["retract_notification_id"],
            ["notifications.id"],
            name=op.f("fk_news_items_retract_notification_id_notifications"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_news_items")),
    )
    op.create_index("ix_news_items_unit_created", "news_items", ["unit_id", "created_at"], unique=False)
    op.create_index(
        "ix_news_items_due",
        "news_items",
        ["send_at"],
        unique=False,
        postgresql_where=sa.text("status = 'scheduled'"),
    )
    op.create_index(
        "ix_news_items_sending",
        "news_items",
        ["notification_id"],
        unique=False,
        postgresql_where=sa.text("status = 'sending'"),
    )


def downgrade() -> None:
    op.drop_index("ix_news_items_sending", table_name="news_items")
    op.drop_index("ix_news_items_due", table_name="news_items")
    op.drop_index("ix_news_items_unit_created", table_name="news_items")
    op.drop_table("news_items")
    op.drop_table("news_sections")
    op.drop_column("notifications", "cancelled")
    op.drop_column("notifications", "withdrawn_at")
    op.drop_table("account_topics")
    op.drop_column("devices", "app_version_code")
    op.drop_column("devices", "province")

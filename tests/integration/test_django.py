"""A real web framework on a followed upstream (issue 9, acceptance 2): Django's
migrations (an initial one, then one that alters the filled tables) and its
ORM's writes, through its psycopg 3 backend; the downstream must have the same
schema, the same rows, and no sequence behind.

Django runs in a child process per phase (settings.configure(), an app
generated under tmp_path, call_command()): its model registry cannot take
changed models within one process.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import Pair, wait_until

pytest.importorskip("django")

RUNNER = """
import sys
import django
from django.conf import settings

settings.configure(
    DATABASES={{"default": {{
        "ENGINE": "django.db.backends.postgresql",
        "NAME": {dbname!r}, "USER": "postgres", "HOST": {host!r}, "PORT": {port!r},
    }}}},
    INSTALLED_APPS=["shop"],
    USE_TZ=True,
    DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
)
django.setup()
from django.core.management import call_command
from django.db.backends.postgresql.psycopg_any import is_psycopg3
assert is_psycopg3, "Django is not on psycopg 3"

phase = sys.argv[1]
if phase == "1":
    call_command("makemigrations", "shop", interactive=False, verbosity=0)
call_command("migrate", interactive=False, verbosity=0)
# the models and the migrations agree (the second migration is written by hand)
call_command("makemigrations", "shop", check=True, dry_run=True, verbosity=0)

import datetime
from decimal import Decimal
from django.db import transaction
from shop.models import Customer, Order, OrderLine, Product

now = datetime.datetime(2026, 12, 2, 9, 0, tzinfo=datetime.timezone.utc)
if phase == "1":
    Customer.objects.bulk_create(
        Customer(email=f"c{{i}}@example.com", name=f"Customer {{i}}") for i in range(60)
    )
    Product.objects.bulk_create(
        Product(sku=f"SKU-{{i}}", price=Decimal("9.99") + i) for i in range(12)
    )
    products = list(Product.objects.order_by("id"))
    for n, customer in enumerate(Customer.objects.order_by("id")[:40]):
        with transaction.atomic():
            order = Order.objects.create(customer=customer, placed=now, note=f"order {{n}}")
            for product in products[n % 5 : n % 5 + 3]:
                OrderLine.objects.create(order=order, product=product, qty=n + 1)
    Customer.objects.filter(id__lte=5).update(name="renamed")
    Order.objects.filter(id__in=[3, 4]).delete()
    Product.objects.filter(sku="SKU-11").update(price=Decimal("0.01"))
else:
    Customer.objects.filter(id__lte=10).update(vip=True)
    big = Customer.objects.create(email="big@example.com", name="Big", vip=True)
    order = Order.objects.create(customer=big, placed=now, comment="after the migration")
    OrderLine.objects.create(order=order, product=Product.objects.first(), qty=3_000_000_000)
    OrderLine.objects.filter(qty__lt=5).update(qty=5)
    Customer.objects.filter(id=60).delete()
    Product.objects.create(sku="SKU-NEW", price=Decimal("1234567890.12"))
"""

MODELS_1 = """
from django.db import models


class Customer(models.Model):
    id = models.AutoField(primary_key=True)
    email = models.EmailField(unique=True)
    name = models.CharField(max_length=100, db_index=True)


class Product(models.Model):
    sku = models.CharField(max_length=20)
    price = models.DecimalField(max_digits=10, decimal_places=2)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["sku"], name="product_sku_uniq")]


class Order(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="orders")
    placed = models.DateTimeField()
    note = models.TextField(blank=True, default="")


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey(Product, on_delete=models.PROTECT)
    qty = models.IntegerField()

    class Meta:
        unique_together = [("order", "product")]
"""

# a field with a default, a rename, two type changes, an index: on filled tables
MODELS_2 = (
    MODELS_1.replace(
        "    name = models.CharField(max_length=100, db_index=True)\n",
        "    name = models.CharField(max_length=100, db_index=True)\n"
        "    vip = models.BooleanField(default=False)\n",
    )
    .replace(
        '    note = models.TextField(blank=True, default="")',
        '    comment = models.TextField(blank=True, default="")',
    )
    .replace("    qty = models.IntegerField()", "    qty = models.BigIntegerField()")
    .replace("max_digits=10, decimal_places=2", "max_digits=14, decimal_places=2")
    .replace(
        '        unique_together = [("order", "product")]',
        '        unique_together = [("order", "product")]\n'
        '        indexes = [models.Index(fields=["qty"], name="line_qty_idx")]',
    )
)

MIGRATION_2 = """
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("shop", "0001_initial")]
    operations = [
        migrations.AddField("customer", "vip", models.BooleanField(default=False)),
        migrations.RenameField("order", "note", "comment"),
        migrations.AlterField("orderline", "qty", models.BigIntegerField()),
        migrations.AlterField(
            "product", "price", models.DecimalField(max_digits=14, decimal_places=2)
        ),
        migrations.AddIndex("orderline", models.Index(fields=["qty"], name="line_qty_idx")),
    ]
"""

SCHEMA = [
    "SELECT c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod),"
    "       a.attnotnull, a.attidentity, pg_get_expr(d.adbin, d.adrelid)"
    "  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
    "  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
    " WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' AND a.attnum > 0"
    "   AND NOT a.attisdropped ORDER BY 1, 2",
    "SELECT conrelid::regclass::text, conname::text, pg_get_constraintdef(oid), condeferrable"
    "  FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2",
    "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index"
    " WHERE indrelid::regclass::text LIKE 'shop\\_%' ORDER BY 1",
    "SELECT relname::text, relkind, relreplident FROM pg_class"
    " WHERE relnamespace = 'public'::regnamespace ORDER BY 1",
]
ROWS = [
    "SELECT * FROM shop_customer ORDER BY id",
    "SELECT * FROM shop_product ORDER BY id",
    "SELECT * FROM shop_order ORDER BY id",
    "SELECT * FROM shop_orderline ORDER BY id",
    "SELECT app, name FROM django_migrations ORDER BY id",
]
SEQUENCES = (
    "SELECT c.relname::text, pg_sequence_last_value(c.oid) FROM pg_class c"
    " WHERE c.relkind = 'S' AND c.relnamespace = 'public'::regnamespace ORDER BY 1"
)


def _django(tmp_path: Path, pair: Pair, phase: str) -> None:
    cluster = pair.up.cluster
    script = RUNNER.format(dbname=pair.up.dbname, host=str(cluster.sockdir), port=str(cluster.port))
    (tmp_path / "run.py").write_text(script)
    done = subprocess.run(
        [sys.executable, str(tmp_path / "run.py"), phase],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def _same(pair: Pair, queries: list[str]) -> None:
    for query in queries:
        assert pair.down.rows(query) == pair.up.rows(query), query


def _no_sequence_behind(pair: Pair) -> None:
    wait_until(
        lambda: pair.down.rows(SEQUENCES) == pair.up.rows(SEQUENCES),
        15,
        lambda: f"sequences: up {pair.up.rows(SEQUENCES)} down {pair.down.rows(SEQUENCES)}",
    )


def test_django_migrations_and_orm_writes_replicate(pair: Pair, tmp_path: Path) -> None:
    app = tmp_path / "shop"
    (app / "migrations").mkdir(parents=True)
    (app / "__init__.py").write_text("")
    (app / "migrations" / "__init__.py").write_text("")
    (app / "models.py").write_text(textwrap.dedent(MODELS_1))
    pair.follow()

    _django(tmp_path, pair, "1")
    pair.caught_up(30)
    assert pair.up.scalar("SELECT count(*) FROM shop_orderline") > 100
    _same(pair, SCHEMA)
    _same(pair, ROWS)
    _no_sequence_behind(pair)

    (app / "models.py").write_text(textwrap.dedent(MODELS_2))
    (app / "migrations" / "0002_alter_filled_tables.py").write_text(MIGRATION_2)
    _django(tmp_path, pair, "2")
    pair.caught_up(30)
    assert pair.up.scalar("SELECT max(qty) FROM shop_orderline") == 3_000_000_000
    _same(pair, SCHEMA)
    _same(pair, ROWS)
    _no_sequence_behind(pair)
    status = pair.status()
    assert status["state"] == "streaming" and status["last_error"] is None, status

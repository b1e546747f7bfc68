"""What `once_per` promises, seen in the messages the customer gets (not in the key's spelling).

Each test runs the real pipeline and dispatcher on a SQLite file with capturing channels and a
rule file of its own, and counts the messages that reach the channel.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from support.core import MESSAGE_TEMPLATES, insert, migrated_database, planned

from carebot.channels import ChannelKind, MemoryChannel
from carebot.clock import VirtualClock
from carebot.events import parse_event
from carebot.runtime import Runtime, build_runtime
from carebot.settings import Settings
from carebot.store.models import NotificationRow

NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
PHONE = "+8613800138000"
EMAIL = "wang@example.com"


class Shop:
    def __init__(self, tmp_path: Path, rules: str) -> None:
        rules_dir = tmp_path / "rules"
        rules_dir.mkdir(parents=True)
        (rules_dir / "rules.yaml").write_text(rules, encoding="utf-8")
        db_path = tmp_path / "carebot.db"
        settings = Settings(
            database_url=f"sqlite:///{db_path}",
            rules_dir=rules_dir,
            templates_dir=MESSAGE_TEMPLATES,
            quiet_hours="none",
            default_timezone="Asia/Shanghai",
            default_locale="zh-CN",
        )
        self.clock = VirtualClock(NOW)
        self.channels = {kind: MemoryChannel(kind=kind) for kind in ChannelKind}
        self.runtime: Runtime = build_runtime(
            settings,
            clock=self.clock,
            channels=self.channels,
            db=migrated_database(db_path),
            inline_db=True,
        )

    async def ingest(self, payload: dict[str, Any], *, source: str = "carebot") -> None:
        self.clock.advance(timedelta(minutes=1))
        self.runtime.pipeline.ingest(parse_event(payload), source=source)
        await self.runtime.dispatcher.run_once()

    def sent(self, kind: ChannelKind = ChannelKind.SMS) -> list[str]:
        return [message.to for message in self.channels[kind].sent]


@pytest.fixture
def make_shop(tmp_path: Path) -> Iterator[Any]:
    shops: list[Shop] = []

    def make(rules: str) -> Shop:
        shop = Shop(tmp_path / f"shop{len(shops)}", rules)
        shops.append(shop)
        return shop

    yield make
    for shop in shops:
        shop.runtime.db.dispose()


def rule(once_per: str, *, rule_id: str = "shipped", channel: str = "sms") -> str:
    return (
        f"  - id: {rule_id}\n"
        "    on: order.shipped\n"
        f"    send: {{channel: {channel}, template: shipped}}\n"
        f"    once_per: {once_per}\n"
    )


def shipped(
    event_id: str,
    *,
    order_id: str = "1001",
    shipment_id: str = "s-1",
    customer_id: str = "c-1",
    phone: str = PHONE,
) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": "order.shipped",
        "occurred_at": NOW.isoformat(),
        "order": {
            "id": order_id,
            "customer": {"id": customer_id, "phone": phone, "email": EMAIL},
        },
        "shipment": {
            "id": shipment_id,
            "carrier": "SF Express",
            "tracking_number": f"SF{shipment_id}",
            "status": "in_transit",
        },
    }


async def test_once_per_shipment_one_message_per_parcel_however_many_reports(
    make_shop: Any,
) -> None:
    shop = make_shop("rules:\n" + rule("shipment"))
    await shop.ingest(shipped("shopify-fulfillment-1"), source="shopify")
    await shop.ingest(shipped("aftership-intransit-1"), source="aftership")  # the same parcel
    assert shop.sent() == [PHONE]
    await shop.ingest(shipped("shopify-fulfillment-2", shipment_id="s-2"), source="shopify")
    assert shop.sent() == [PHONE, PHONE]  # the order's second parcel


async def test_once_per_order_one_message_for_all_its_parcels(make_shop: Any) -> None:
    shop = make_shop("rules:\n" + rule("order"))
    await shop.ingest(shipped("e-1", shipment_id="s-1"))
    await shop.ingest(shipped("e-2", shipment_id="s-2"))
    assert shop.sent() == [PHONE]
    await shop.ingest(shipped("e-3", order_id="1002", shipment_id="s-3"))
    assert shop.sent() == [PHONE, PHONE]  # another order


async def test_once_per_customer_one_message_across_their_orders(make_shop: Any) -> None:
    shop = make_shop("rules:\n" + rule("customer"))
    await shop.ingest(shipped("e-1", order_id="1001", shipment_id="s-1"))
    await shop.ingest(shipped("e-2", order_id="1002", shipment_id="s-2"))
    assert shop.sent() == [PHONE]
    other = "+8613900139000"
    await shop.ingest(
        shipped("e-3", order_id="1003", shipment_id="s-3", customer_id="c-2", phone=other)
    )
    assert shop.sent() == [PHONE, other]


async def test_once_per_event_one_message_per_event_and_none_for_its_replay(
    make_shop: Any,
) -> None:
    shop = make_shop("rules:\n" + rule("event"))
    await shop.ingest(shipped("e-1"))
    await shop.ingest(shipped("e-1"))  # the same delivery again
    await shop.ingest(shipped("e-2"))  # a new event about the same parcel
    assert shop.sent() == [PHONE, PHONE]


async def test_two_rules_on_one_event_each_send_their_own_message(make_shop: Any) -> None:
    shop = make_shop("rules:\n" + rule("order") + rule("order", rule_id="shipped-again"))
    await shop.ingest(shipped("e-1"))
    await shop.ingest(shipped("e-2", shipment_id="s-2"))
    assert shop.sent() == [PHONE, PHONE]


async def test_a_rule_sending_by_both_channels_sends_one_of_each_once(make_shop: Any) -> None:
    shop = make_shop("rules:\n" + rule("order", channel="sms+email"))
    await shop.ingest(shipped("e-1"))
    await shop.ingest(shipped("e-2", shipment_id="s-2"))
    assert shop.sent(ChannelKind.SMS) == [PHONE]
    assert shop.sent(ChannelKind.EMAIL) == [EMAIL]


async def test_a_notice_already_sent_by_an_earlier_release_is_not_sent_again(
    make_shop: Any,
) -> None:
    # The keys stored in a running shop's database outlive a carebot upgrade: a notice that an
    # earlier release sent, stored under that release's spelling of the key, is not sent again.
    shop = make_shop("rules:\n" + rule("shipment"))
    earlier = planned("shipment:s-1:shipped:sms", due_at=NOW)
    insert(shop.runtime.db, earlier, now=NOW)
    with shop.runtime.db.transaction() as session:
        session.execute(update(NotificationRow).values(status="sent", sent_at=NOW))
    await shop.ingest(shipped("e-1"))
    assert shop.sent() == []
    with shop.runtime.db.transaction() as session:
        assert session.scalars(select(NotificationRow.status)).all() == ["sent"]

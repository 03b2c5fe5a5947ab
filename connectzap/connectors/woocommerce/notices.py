"""What the WooCommerce connector journals as ``resolve`` events: ids only, completed by the
connector with REST reads when a worker takes them (a note to the customer as it arrives; a
review request or a cash-on-delivery reminder or timeout when it falls due)."""

from __future__ import annotations

from pydantic import RootModel

from .cod import CodDue
from .customer_notes import CustomerNote
from .review_requests import ReviewDue


class ShopNotice(RootModel[CustomerNote | ReviewDue | CodDue]):
    """One ``resolve`` event of the connector; ``root`` says which work it is."""

    def subject(self) -> str:
        return self.root.subject()

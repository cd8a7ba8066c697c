"""Contact policy: caps per customer and per action over rolling windows, cool-down after 'no'."""

from __future__ import annotations

from collections.abc import Sequence

from service.catalog import Action, Catalog
from service.decision_log import ContactHistory
from service.rules import Drop, Rule

DAY = 86_400.0


def lookback_seconds(catalog: Catalog) -> float:
    """How far back the history must reach to check every cap and cool-down of the catalog."""
    days = (
        [catalog.policy.customer_contact_cap.window_days]
        if catalog.policy.customer_contact_cap
        else []
    )
    for action in catalog.actions:
        policy = action.contact_policy
        if policy.cap:
            days.append(policy.cap.window_days)
        days.append(policy.cooldown_days_after_reject)
    return max(days, default=0.0) * DAY


def customer_cap_reached(catalog: Catalog, history: ContactHistory, now: float) -> str | None:
    """Why the customer may not be contacted at all right now, or None."""
    cap = catalog.policy.customer_contact_cap
    if cap is None:
        return None
    since = now - cap.window_days * DAY
    count = sum(1 for _, at in history.shown if at >= since)
    if count >= cap.max_count:
        return f"{count} contacts in the last {cap.window_days:g} days (cap {cap.max_count})"
    return None


def contact_drops(
    catalog: Catalog, actions: Sequence[Action], history: ContactHistory, now: float
) -> list[Drop]:
    """Candidates the contact policy removes, each with the rule and the count behind it."""
    drops: list[Drop] = []
    overall = customer_cap_reached(catalog, history, now)
    for action in actions:
        if overall:
            drops.append(Drop(action.id, Rule.CUSTOMER_CONTACT_CAP, overall))
            continue
        policy = action.contact_policy
        if policy.cooldown_days_after_reject > 0:
            since = now - policy.cooldown_days_after_reject * DAY
            rejections = [at for a, at in history.rejected if a == action.id and at >= since]
            if rejections:
                days_ago = (now - max(rejections)) / DAY
                drops.append(
                    Drop(
                        action.id,
                        Rule.COOLDOWN_AFTER_REJECT,
                        f"customer said no {days_ago:.1f} days ago "
                        f"(cool-down {policy.cooldown_days_after_reject:g} days)",
                    )
                )
                continue
        if policy.cap:
            since = now - policy.cap.window_days * DAY
            count = sum(1 for a, at in history.shown if a == action.id and at >= since)
            if count >= policy.cap.max_count:
                drops.append(
                    Drop(
                        action.id,
                        Rule.ACTION_CONTACT_CAP,
                        f"shown {count} times in the last {policy.cap.window_days:g} days "
                        f"(cap {policy.cap.max_count})",
                    )
                )
    return drops

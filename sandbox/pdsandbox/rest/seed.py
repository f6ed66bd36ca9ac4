"""The accounts every sandbox starts with, identical at every start.

- "acme-corp" (US): 2 users, 2 weekly on-call schedules, 3 escalation policies and 160
  services, so listing them needs paging; a global and a team ruleset for the Simple Install
  Flow; "Datadog" Events API v2 integrations on some services and legacy "Nagios" Events API
  v1 integrations on two.
- "globex-eu" (EU): 2 users, a weekly and a 12-hour schedule, 2 policies, 8 services, a
  global ruleset.
- "initech" (US): 1 user, 1 schedule, 1 policy, 4 services, a global ruleset.

Escalation levels page schedules (and, on some policies, a user directly), so who is on call,
and until when, changes with the sandbox clock. The weekly rotations hand over on Mondays at
09:00 UTC; "Acme Primary" has Ada on call in the weeks Acme Secondary has Bob, and the other
way round.

Accounts, users, schedules and policies have readable fixed ids; services, integrations and
keys come from a fixed-seed generator.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from pdsandbox import ids
from pdsandbox.models import (
    Account,
    EscalationPolicy,
    EscalationRule,
    EscalationTarget,
    Integration,
    Region,
    Ruleset,
    Schedule,
    ScheduleLayer,
    Service,
    User,
)

SEED = 20240501
SEEDED_AT = 1_700_000_000.0  # created_at of everything seeded (2023-11-14)
# Monday 2023-11-13 09:00 UTC: where the seeded rotations count their turns from.
ROTATION_START = 1_699_866_000.0
WEEK = 7 * 86400
ESCALATION_DELAY_MINUTES = 30
EVENTS_V2 = "events_api_v2_inbound_integration"
EVENTS_V1 = "generic_events_api_inbound_integration"
# Services that still carry an Events API v1 integration, so v1 service keys exist.
V1_SERVICES = ("Search Indexer", "Shipping Queue")

_ACME_TEAMS = (
    "Checkout", "Payments", "Search", "Inventory", "Shipping",
    "Identity", "Notifications", "Billing", "Catalog", "Reporting",
)  # fmt: skip
_ACME_COMPONENTS = (
    "API", "Worker", "Database", "Cache", "Frontend", "Queue", "Scheduler", "Gateway",
    "Exporter", "Cron", "Ledger", "Proxy", "Indexer", "Webhooks", "Batch", "Stream",
)  # fmt: skip
_GLOBEX_SERVICES = (
    "Billing API", "Billing Worker", "Customer Portal", "Data Lake",
    "Email Relay", "Fraud Scoring", "Order Intake", "Warehouse Sync",
)  # fmt: skip
_INITECH_SERVICES = ("Intranet", "Mainframe Bridge", "Printer Fleet", "TPS Reports")


@dataclass
class Seed:
    accounts: list[Account] = field(default_factory=list)
    users: list[User] = field(default_factory=list)
    schedules: list[Schedule] = field(default_factory=list)
    policies: list[EscalationPolicy] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    integrations: list[Integration] = field(default_factory=list)
    rulesets: list[Ruleset] = field(default_factory=list)


class _Builder:
    def __init__(self) -> None:
        self.rng = random.Random(SEED)
        self.seed = Seed()
        self.taken: set[str] = set()

    def new_id(self) -> str:
        while (value := ids.pd_id(self.rng)) in self.taken:
            pass
        self.taken.add(value)
        return value

    def account(self, account_id: str, subdomain: str, name: str, region: Region) -> str:
        self.taken.add(account_id)
        self.seed.accounts.append(Account(account_id, subdomain, name, region))
        return account_id

    def user(self, user_id: str, account_id: str, name: str, email: str) -> str:
        self.taken.add(user_id)
        self.seed.users.append(User(user_id, account_id, name, email))
        return user_id

    def schedule(
        self, schedule_id: str, account_id: str, name: str, users: tuple[str, ...], turn: int
    ) -> str:
        self.taken.add(schedule_id)
        layer = ScheduleLayer(
            id=f"L{schedule_id[1:]}",
            name="Layer 1",
            start=ROTATION_START,
            rotation_virtual_start=ROTATION_START,
            turn_length_seconds=turn,
            user_ids=users,
        )
        hours = turn // 3600
        description = f"{len(users)} responder(s) in turns of {hours} hours."
        self.seed.schedules.append(
            Schedule(schedule_id, account_id, name, description, "Etc/UTC", (layer,))
        )
        return schedule_id

    def policy(
        self, policy_id: str, account_id: str, name: str, levels: tuple[tuple[str, ...], ...]
    ) -> str:
        """`levels`: the targets of each level, level 1 first: schedule ids ("PSC…") or user
        ids."""
        self.taken.add(policy_id)
        rules = tuple(
            EscalationRule(
                id=f"R{policy_id[1:]}{n}",
                delay_minutes=ESCALATION_DELAY_MINUTES,
                targets=tuple(
                    EscalationTarget("schedule" if t.startswith("PSC") else "user", t)
                    for t in targets
                ),
            )
            for n, targets in enumerate(levels)
        )
        description = f"Pages {len(rules)} level(s) in turn."
        self.seed.policies.append(EscalationPolicy(policy_id, account_id, name, description, rules))
        return policy_id

    def service(self, account_id: str, name: str, policy_id: str) -> str:
        service_id = self.new_id()
        self.seed.services.append(
            Service(service_id, account_id, name, f"{name} (seeded)", policy_id, SEEDED_AT)
        )
        return service_id

    def integration(
        self, account_id: str, service_id: str, name: str, type_: str = EVENTS_V2
    ) -> None:
        self.seed.integrations.append(
            Integration(
                id=self.new_id(),
                account_id=account_id,
                service_id=service_id,
                type=type_,
                name=name,
                integration_key=ids.integration_key(self.rng),
                created_at=SEEDED_AT,
                created_by=None,
            )
        )

    def ruleset(self, account_id: str, name: str, kind: str) -> None:
        self.seed.rulesets.append(
            Ruleset(self.new_id(), account_id, name, kind, ids.ruleset_routing_key(self.rng))
        )


def build_seed() -> Seed:
    b = _Builder()

    acme = b.account("PACME00", "acme-corp", "Acme Corp", Region.US)
    ada = b.user("PADA001", acme, "Ada Lovelace", "ada@acme.example")
    bob = b.user("PBOB002", acme, "Bob Builder", "bob@acme.example")
    primary = b.schedule("PSCAC01", acme, "Acme Primary", (ada, bob), WEEK)
    secondary = b.schedule("PSCAC02", acme, "Acme Secondary", (bob, ada), WEEK)
    acme_policies = (
        b.policy("PEPAC01", acme, "Default", ((primary,),)),
        b.policy("PEPAC02", acme, "Platform On-Call", ((primary,), (secondary,))),
        b.policy("PEPAC03", acme, "Database On-Call", ((secondary,), (ada,))),
    )
    n = 0
    for team in _ACME_TEAMS:
        for component in _ACME_COMPONENTS:
            service_id = b.service(acme, f"{team} {component}", acme_policies[n % 3])
            # Some services already carry another tool's integration, as real ones do.
            if n % 7 == 0:
                b.integration(acme, service_id, "Datadog")
            n += 1
    b.ruleset(acme, "Global Event Rules", "global_rule_set")
    b.ruleset(acme, "Platform Team's Rules", "team_rule_set")

    globex = b.account("PGLBX00", "globex-eu", "Globex", Region.EU)
    hank = b.user("PHANK01", globex, "Hank Scorpio", "hank@globex.example")
    greta = b.user("PGRETA2", globex, "Greta Berg", "greta@globex.example")
    weekly = b.schedule("PSCGL01", globex, "Globex Weekly", (hank, greta), WEEK)
    sun = b.schedule("PSCGL02", globex, "Follow the Sun", (hank, greta), 12 * 3600)
    globex_policies = (
        b.policy("PEPGL01", globex, "Default", ((weekly,),)),
        b.policy("PEPGL02", globex, "Follow the Sun", ((sun,), (hank,))),
    )
    for i, name in enumerate(_GLOBEX_SERVICES):
        b.service(globex, name, globex_policies[i % 2])
    b.ruleset(globex, "Global Event Rules", "global_rule_set")

    initech = b.account("PINIT00", "initech", "Initech", Region.US)
    peter = b.user("PPETER1", initech, "Peter Gibbons", "peter@initech.example")
    on_call = b.schedule("PSCIN01", initech, "Initech On-Call", (peter,), WEEK)
    initech_policy = b.policy("PEPIN01", initech, "Default", ((on_call,),))
    for name in _INITECH_SERVICES:
        b.service(initech, name, initech_policy)
    b.ruleset(initech, "Global Event Rules", "global_rule_set")

    # Made last so the ids and keys drawn before them stay what they were.
    for name in V1_SERVICES:
        service = next(s for s in b.seed.services if s.account_id == acme and s.name == name)
        b.integration(acme, service.id, "Nagios", EVENTS_V1)

    return b.seed

"""The shipped map of organisations to the registrable domains they operate."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import cache
from importlib.resources import as_file, files

from pydantic import BaseModel, ConfigDict, model_validator

from harness.classify.listfile import load_list_file
from harness.classify.model import Category

ORGANIZATIONS_FILE = "organizations.yaml"


class _Organization(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    parent: str | None = None
    domains: dict[str, Category]
    # the ASN names of the networks it runs (globs, upper case as registered: ``AMAZON-*``)
    networks: list[str] = []


class _OrganizationsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    source: str
    date: datetime.date
    licence: str
    organizations: list[_Organization]

    @model_validator(mode="after")
    def _consistent(self) -> _OrganizationsFile:
        names = {org.name for org in self.organizations}
        seen: dict[str, str] = {}
        for org in self.organizations:
            if org.parent is not None and org.parent not in names:
                raise ValueError(f"{org.name}: unknown parent {org.parent!r}")
            for domain in org.domains:
                if domain in seen:
                    raise ValueError(f"{domain} listed under {seen[domain]} and {org.name}")
                seen[domain] = org.name
        return self


@dataclass(frozen=True, slots=True)
class DomainOwner:
    """Who operates a domain: the organisation, its ultimate parent, the domain's category."""

    organization: str
    owner: str
    category: Category


@cache
def _organizations() -> tuple[list[_Organization], dict[str, str]]:
    """The listed organisations and each one's ultimate owner."""
    with as_file(files("harness.classify") / "data" / ORGANIZATIONS_FILE) as path:
        parsed = load_list_file(path, _OrganizationsFile)
    parents = {org.name: org.parent for org in parsed.organizations}

    def top(name: str) -> str:
        while parents[name] is not None:
            name = parents[name]
        return name

    return parsed.organizations, {org.name: top(org.name) for org in parsed.organizations}


@cache
def _table() -> dict[str, DomainOwner]:
    organizations, owners = _organizations()
    return {
        domain: DomainOwner(org.name, owners[org.name], category)
        for org in organizations
        for domain, category in org.domains.items()
    }


@cache
def network_owner(asn_name: str) -> str | None:
    """The ultimate owner of the first organisation with a ``networks`` glob matching ``asn_name``."""
    organizations, owners = _organizations()
    for org in organizations:
        if any(fnmatchcase(asn_name.upper(), pattern) for pattern in org.networks):
            return owners[org.name]
    return None


def domain_owner(name: str) -> DomainOwner | None:
    """The organisation of the longest listed domain that ``name`` equals or lies under."""
    table = _table()
    labels = name.split(".")
    for start in range(len(labels) - 1):
        found = table.get(".".join(labels[start:]))
        if found is not None:
            return found
    return None

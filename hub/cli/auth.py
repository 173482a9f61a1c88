"""``hub users``, ``hub orgs``, ``hub clients``, ``hub keys`` and ``hub tokens``: the hub's principals.

Commands run as the hub itself (full rights, as the machine's operator); every change is recorded in
the audit log under ``cli:<login name>``.
"""

from __future__ import annotations

import getpass
import sys

import typer
from rich.table import Table
from sqlalchemy import select

from hub.auth.principal import SCOPES, SYSTEM, Principal
from hub.cli.common import console, err_console, session, settings

users_app = typer.Typer(help="People: accounts, organization roles (admin, editor, member), sysadmins.")
orgs_app = typer.Typer(help="Organizations (agencies).")
clients_app = typer.Typer(help="OAuth clients: one per connected system of an organization.")
keys_app = typer.Typer(help="The hub's token and audit signing keys.")
tokens_app = typer.Typer(
    help="Tokens for scripts: OAuth access tokens of a client, people's CKAN API tokens."
)


def operator() -> Principal:
    """The CLI's principal: the hub itself, named after the operator's login."""
    try:
        login = getpass.getuser()
    except Exception:
        login = "unknown"
    return Principal(kind="system", subject="cli", name=f"cli:{login}", sysadmin=True, scopes=SYSTEM.scopes)


# --- users ------------------------------------------------------------------------------------


@users_app.command("add")
def users_add(
    name: str = typer.Argument(..., help="Login name."),
    email: str = typer.Option(None, help="E-mail address."),
    fullname: str = typer.Option(None, help="Full name."),
    sysadmin: bool = typer.Option(False, "--sysadmin", help="Make the person a sysadmin (every right)."),
    org: str = typer.Option(None, help="Organization to join (id or name)."),
    role: str = typer.Option("member", help="Role in --org: admin, editor or member."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
    external_id: str = typer.Option(None, help="Link an external OIDC account: '<issuer>#<sub>'."),
) -> None:
    """Add a person (the password is prompted for, or read from stdin)."""
    from hub.auth import users

    if password_stdin:
        password: str | None = sys.stdin.readline().rstrip("\n")
    elif external_id:
        password = None
    else:
        password = typer.prompt("Password / Mật khẩu", hide_input=True, confirmation_prompt=True)
    with session() as s:
        user = users.add_user(
            s,
            name,
            password,
            email=email,
            fullname=fullname,
            sysadmin=sysadmin,
            external_id=external_id,
            actor=operator(),
        )
        if org:
            users.set_role(s, user.id, org, role, actor=operator())
    console.print(f"user [bold]{name}[/] added")


@users_app.command("list")
def users_list() -> None:
    """List people with their roles."""
    from hub.auth.models import Membership, User
    from hub.catalog.models import Organization

    with session() as s:
        table = Table("name", "fullname", "sysadmin", "roles", "state")
        for u in s.scalars(select(User).order_by(User.name)):
            roles = [
                f"{o.name}:{m.role}"
                for m, o in s.execute(
                    select(Membership, Organization)
                    .join(Organization, Organization.id == Membership.org_id)
                    .where(Membership.user_id == u.id)
                )
            ]
            table.add_row(u.name, u.fullname or "", "yes" if u.sysadmin else "", ", ".join(roles), u.state)
    console.print(table)


@users_app.command("set-role")
def users_set_role(
    user: str = typer.Argument(..., help="Login name."),
    org: str = typer.Argument(..., help="Organization id or name."),
    role: str = typer.Argument(..., help="admin, editor, member, or none to remove."),
) -> None:
    """Give a person a role in an organization (or remove it with 'none')."""
    from hub.auth import users

    with session() as s:
        users.set_role(s, user, org, None if role == "none" else role, actor=operator())
    console.print(f"{user}: {role} in {org}")


@users_app.command("set-sysadmin")
def users_set_sysadmin(
    user: str = typer.Argument(..., help="Login name."),
    value: bool = typer.Option(True, "--on/--off", help="Grant or remove sysadmin."),
) -> None:
    """Make a person a sysadmin, or not."""
    from hub.auth import users

    with session() as s:
        users.set_sysadmin(s, user, value, actor=operator())
    console.print(f"{user}: sysadmin {'on' if value else 'off'}")


# --- organizations ----------------------------------------------------------------------------


@orgs_app.command("add")
def orgs_add(
    name: str = typer.Argument(..., help="Short name (so-tu-phap)."),
    title: str = typer.Argument(..., help="Vietnamese title (Sở Tư pháp)."),
    title_en: str = typer.Option(None, help="English title."),
) -> None:
    """Add an organization (agency)."""
    from hub.auth import users

    with session() as s:
        org = users.add_org(s, name, title, title_en=title_en, actor=operator())
    console.print(f"organization [bold]{name}[/] added ({org.id})")


@orgs_app.command("list")
def orgs_list() -> None:
    """List organizations."""
    from hub.catalog.models import Organization

    with session() as s:
        table = Table("name", "title", "id")
        for o in s.scalars(select(Organization).order_by(Organization.name)):
            table.add_row(o.name, o.title, o.id)
    console.print(table)


# --- clients ----------------------------------------------------------------------------------


@clients_app.command("add")
def clients_add(
    org: str = typer.Argument(..., help="Owning organization (id or name)."),
    name: str = typer.Argument(..., help="Name of the connected system."),
    scope: str = typer.Option("catalog:read datastore:read", help=f"Allowed scopes: {' '.join(SCOPES)}"),
    grant_type: list[str] = typer.Option(
        ["client_credentials"], "--grant-type", help="client_credentials, authorization_code, refresh_token"
    ),
    redirect_uri: list[str] = typer.Option([], "--redirect-uri", help="Redirect URI (authorization code)."),
    public: bool = typer.Option(False, "--public", help="A public client (no secret; PKCE apps)."),
    client_id: str = typer.Option(None, help="Client id (default: <org>-<random>)."),
) -> None:
    """Add an OAuth client; its secret is printed once and stored only hashed."""
    from hub.auth import users

    with session() as s:
        client, secret = users.add_client(
            s,
            org,
            name,
            scope=scope,
            grant_types=tuple(grant_type),
            redirect_uris=tuple(redirect_uri),
            public=public,
            client_id=client_id,
            actor=operator(),
        )
    console.print(f"client_id:     {client.client_id}")
    if secret:
        console.print(f"client_secret: {secret}")
        err_console.print("[yellow]The secret is shown only now; store it in the system's secret store.[/]")


@clients_app.command("list")
def clients_list(org: str = typer.Option(None, help="Only this organization's clients.")) -> None:
    """List OAuth clients (never their secrets)."""
    from hub.auth.models import OAuthClient
    from hub.auth.users import get_org

    with session() as s:
        q = select(OAuthClient).order_by(OAuthClient.client_id)
        if org:
            q = q.where(OAuthClient.org_id == get_org(s, org).id)
        table = Table("client_id", "name", "scope", "grant types", "state")
        for c in s.scalars(q):
            table.add_row(c.client_id, c.name, c.scope, " ".join(c.grant_types), c.state)
    console.print(table)


@clients_app.command("disable")
def clients_disable(client_id: str = typer.Argument(..., help="Client id.")) -> None:
    """Disable a client: its tokens stop working on the next request."""
    from hub.auth import users

    with session() as s:
        users.disable_client(s, client_id, actor=operator())
    console.print(f"client {client_id} disabled")


# --- keys -------------------------------------------------------------------------------------


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Add a new signing key; the old one stays published until its tokens have expired."""
    from hub.auth import audit, keys

    with session() as s:
        row = keys.rotate(s, settings())
        audit.record(s, "admin.keys.rotate", operator(), details={"kid": row.kid})
    keys.clear_cache()
    console.print(f"new signing key {row.kid} ({row.alg})")


@keys_app.command("list")
def keys_list() -> None:
    """List signing keys: current, published (retired, tokens still valid) or withdrawn."""
    from hub.auth import keys
    from hub.auth.models import SigningKey
    from hub.db import utcnow

    cfg = settings()
    with session() as s:
        keys.keyring(cfg, session=s)
        table = Table("kid", "alg", "created", "state", "published until")
        for k in s.scalars(select(SigningKey).order_by(SigningKey.created)):
            until = keys.publish_until(s, cfg, k)
            state = "current" if until is None else ("published" if until > utcnow() else "withdrawn")
            table.add_row(
                k.kid,
                k.alg,
                k.created.isoformat(timespec="seconds"),
                state,
                until.isoformat(timespec="seconds") if until else "",
            )
    console.print(table)


# --- tokens -----------------------------------------------------------------------------------


@tokens_app.command("issue")
def tokens_issue(
    client: str = typer.Option(None, help="Issue an OAuth access token for this client."),
    user: str = typer.Option(None, help="Issue a CKAN API token for this person."),
    scope: str = typer.Option(None, help="Scopes (default: all the client's or person's scopes)."),
    ttl: int = typer.Option(None, help="Lifetime in seconds (client) or days (user)."),
    name: str = typer.Option("cli", help="Name of the API token (user)."),
) -> None:
    """Print a token for scripts (to stdout, nothing else)."""
    from hub.auth import audit, tokens, users
    from hub.errors import InvalidInputError

    if bool(client) == bool(user):
        raise InvalidInputError("give exactly one of --client or --user")
    cfg = settings()
    with session() as s:
        if client:
            c = users.get_client(s, client)
            if c is None or c.state != "active":
                raise InvalidInputError(f"no active client {client!r}")
            allowed = set(c.scope.split())
            wanted = set(scope.split()) if scope else allowed
            if not wanted <= allowed:
                raise InvalidInputError(f"client {client} may not have {sorted(wanted - allowed)}")
            token, claims = tokens.issue_access_token(
                cfg,
                subject=c.client_id,
                client_id=c.client_id,
                scope=" ".join(sorted(wanted)),
                org_id=c.org_id,
                ttl=ttl,
                session=s,
            )
            audit.record(
                s, "auth.token", operator(), details={"client_id": c.client_id, "jti": claims["jti"]}
            )
        else:
            u = users.get_user(s, user)
            allowed = set(users.user_scopes(u, users.org_roles(s, u.id)))
            wanted = set(scope.split()) if scope else allowed
            if not wanted <= allowed:
                raise InvalidInputError(f"{user} may not have {sorted(wanted - allowed)}")
            token, row = tokens.issue_api_token(s, cfg, u, name, scope=" ".join(sorted(wanted)), days=ttl)
            audit.record(s, "auth.api_token.create", operator(), details={"user": u.name, "jti": row.id})
    typer.echo(token)


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")
    app.add_typer(orgs_app, name="orgs")
    app.add_typer(clients_app, name="clients")
    app.add_typer(keys_app, name="keys")
    app.add_typer(tokens_app, name="tokens")

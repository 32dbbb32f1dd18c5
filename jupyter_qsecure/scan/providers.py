"""Provider formats from a maintained rule engine: kingfisher, in process, over our text units.

`kingfisher-secret-scanner <https://github.com/mongodb/kingfisher>`_ (Apache-2.0, a Rust
engine on vectorscan) ships about 490 provider rules (the betterleaks/gitleaks rule set and
Google's veles detectors) and loads custom YAML/TOML rules. We run it through
``kingfisher_sdk.Scanner`` over the *decoded* text units the extractor produces, never
over raw ``.ipynb`` JSON: one native call per scan (the units that missed the cache,
joined with a separator no rule can match across), byte offsets mapped back to units.

Rule ids become our finding types through :data:`FAMILY_TYPES` (``betterleaks.github-pat``
→ ``GitHub Token``): one stable, human name per provider family, spelled as
detect-secrets spells it where it has the family, so detect-secrets baselines keep
matching. A built-in rule outside the table gets ``"<Brand> Credential"`` from its id; an
organisation's rule (:mod:`.orgrules`) gets its own name.

Loading the built-in catalogue costs ~0.4 s of CPU from kingfisher's on-disk cache (about
10 s the very first time, while it compiles and stores it), so it is loaded once per
process, in a background thread started by the first :class:`ProviderEngine`, while the
extractor and our detectors work; the native load and scans release the GIL. The engine
is thread-safe (one native scanner shared by every thread). A failure to load is raised
as :class:`~.errors.ScanError` on use: the scan fails closed, it never silently runs
without the layer.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ScanError
from .models import Detection

#: Between two units in one native call. ``\x1e`` is in no rule's secret alphabet and not
#: whitespace, so no match (and no keyword-then-value context) spans two units.
SEPARATOR = "\n\x1e\n"
_SEPARATOR_BYTES = SEPARATOR.encode()

#: Provider family (rule id without its ``betterleaks.``/``veles.secrets/`` prefix,
#: matched on whole ``-``-separated words from the start) → finding type. Longest key
#: wins. Names shared with detect-secrets are spelled exactly as it spells them.
FAMILY_TYPES: dict[str, str] = {
    # detect-secrets' names (baselines written by detect-secrets keep matching)
    "aws": "AWS Access Key",
    "github": "GitHub Token",
    "gitlab": "GitLab Token",
    "slack": "Slack Token",
    "stripe": "Stripe Access Key",
    "twilio": "Twilio API Key",
    "sendgrid": "SendGrid API Key",
    "jwt": "JSON Web Token",
    # ours reports the whole PEM block under this name (detect-secrets: the header line)
    "private-key": "PEM Private Key",
    "mailchimp": "Mailchimp Access Key",
    "npm": "NPM tokens",
    "pypi": "PyPI Token",
    "artifactory": "Artifactory Credentials",
    "azure-storage-account-key": "Azure Storage Account access key",
    "discord": "Discord Bot Token",
    "telegram": "Telegram Bot Token",
    "ibm-cloud-user-api-key": "IBM Cloud IAM Key",
    # our own detectors' names
    "openai": "OpenAI API Key",
    "vault": "Vault Token",
    "generic-credential-uri": "Connection String Password",
    "mongodb-connection-string": "Connection String Password",
    "azure-servicebus-connection-string": "Azure Storage Connection String",
    "azure-app-configuration-connection-string": "Azure Storage Connection String",
    "curl-auth-header": "HTTP Authorization",
    "curl-auth-user": "Basic Auth Credentials",
    # the rest: brand + kind
    "1password": "1Password Secret",
    "adobe": "Adobe Client Secret",
    "age": "age Secret Key",
    "airtable": "Airtable Token",
    "algolia": "Algolia API Key",
    "alibaba": "Alibaba Cloud Access Key",
    "anthropic": "Anthropic API Key",
    "asana": "Asana Token",
    "atlassian": "Atlassian API Token",
    "auth0": "Auth0 Client Secret",
    "azure": "Azure Credential",
    "azure-ad-client-secret": "Azure AD Client Secret",
    "bitbucket": "Bitbucket Credential",
    "cloudflare": "Cloudflare API Key",
    "cohere": "Cohere API Key",
    "databricks": "Databricks Token",
    "datadog": "Datadog API Key",
    "deepseek": "DeepSeek API Key",
    "digitalocean": "DigitalOcean Token",
    "docker": "Docker Token",
    "dockerhub": "Docker Hub Token",
    "doppler": "Doppler Token",
    "dropbox": "Dropbox Token",
    "dynatrace": "Dynatrace API Token",
    "facebook": "Facebook Token",
    "figma": "Figma Token",
    "flyio": "Fly.io Token",
    "gcp": "Google Cloud Credential",
    "gcp-api-key": "Google API Key",
    "gcp-service-account": "Google Cloud Service Account Key",
    "grafana": "Grafana Token",
    "groq": "Groq API Key",
    "hashicorp": "HashiCorp Terraform Token",
    "heroku": "Heroku API Key",
    "hubspot": "HubSpot API Key",
    "huggingface": "Hugging Face Token",
    "kubernetes-secret-yaml": "Kubernetes Secret",
    "langchain": "LangSmith API Key",
    "linear": "Linear API Key",
    "mailgun": "Mailgun API Key",
    "mistral": "Mistral API Key",
    "netlify": "Netlify Token",
    "new-relic": "New Relic API Key",
    "notion": "Notion Token",
    "okta": "Okta Token",
    "openrouter": "OpenRouter API Key",
    "pinecone": "Pinecone API Key",
    "plaid": "Plaid Credential",
    "planetscale": "PlanetScale Credential",
    "postman": "Postman API Key",
    "pulumi": "Pulumi Token",
    "replicate": "Replicate API Token",
    "sentry": "Sentry Token",
    "shopify": "Shopify Token",
    "snyk": "Snyk API Token",
    "square": "Square Access Token",
    "supabase": "Supabase Key",
    "twitter": "Twitter Credential",
    "vercel": "Vercel Token",
    "weights-and-biases": "Weights & Biases API Key",
    "xai": "xAI API Key",
    # Google's veles detectors (``veles.secrets/<name>``)
    "bitbucketcredentials": "Bitbucket Credential",
    "bitwardenoauth2access": "Bitwarden Credential",
    "circleciproject": "CircleCI Token",
    "cloudflareapitoken": "Cloudflare API Key",
    "codecatalystcredentials": "AWS CodeCatalyst Credential",
    "codecommitcredentials": "AWS CodeCommit Credential",
    "denopatorg": "Deno Token",
    "digitaloceanapikey": "DigitalOcean Token",
    "grokxaiapikey": "xAI API Key",
    "hcpclientcredentials": "HashiCorp Cloud Credential",
    "herokuplatformkey": "Heroku API Key",
    "npmjsaccesstoken": "NPM tokens",
    "packagistorgreadtoken": "Packagist Token",
    "packagistorgupdatetoken": "Packagist Token",
    "packagistsecret": "Packagist Token",
    "postmanapikey": "Postman API Key",
    "postmancollectiontoken": "Postman API Key",
    "slackappconfigaccesstoken": "Slack Token",
    "slackappconfigrefreshtoken": "Slack Token",
    "slackappleveltoken": "Slack Token",
}

#: Brand spellings for families outside :data:`FAMILY_TYPES` (``title()`` otherwise).
_BRANDS = {
    "circleci": "CircleCI",
    "clickhouse": "ClickHouse",
    "cockroachlabs": "Cockroach Labs",
    "devcycle": "DevCycle",
    "elevenlabs": "ElevenLabs",
    "gocardless": "GoCardless",
    "launchdarkly": "LaunchDarkly",
    "mongodb": "MongoDB",
    "posthog": "PostHog",
    "rubygems": "RubyGems",
    "sendinblue": "Sendinblue",
    "sourcegraph": "Sourcegraph",
    "travisci": "Travis CI",
    "youtube": "YouTube",
}
_PREFIXES = ("betterleaks.", "veles.secrets/", "kingfisher.")


def family_of(rule_id: str) -> str:
    """The rule's id without its catalogue prefix and ``.N`` variant suffix."""
    slug = rule_id
    for prefix in _PREFIXES:
        if slug.startswith(prefix):
            slug = slug[len(prefix) :]
            break
    head, _, tail = slug.rpartition(".")
    return head if head and tail.isdigit() else slug


def provider_type(rule_id: str) -> str:
    """The finding type of a built-in kingfisher rule (stable across kingfisher versions)."""
    slug = family_of(rule_id)
    words = slug.split("-")
    for n in range(len(words), 0, -1):
        name = FAMILY_TYPES.get("-".join(words[:n]))
        if name is not None:
            return name
    brand = _BRANDS.get(words[0], words[0].title())
    return f"{brand} Credential"


# ---------------------------------------------------------------- native batching
@dataclass(frozen=True)
class RawHit:
    """A kingfisher finding mapped to one text: rule, character span, rule confidence."""

    rule_id: str
    start: int
    end: int
    confidence: str = "high"
    #: For a match inside a base64 blob kingfisher decoded: the decoded secret (the span
    #: is the blob's).
    decoded: str | None = None


def _char_offset(text: str, data: bytes, byte_offset: int) -> int:
    if len(data) == len(text):  # ASCII: bytes are characters
        return byte_offset
    head = data[:byte_offset]
    try:
        return len(head.decode("utf-8", "surrogatepass"))  # lone surrogates: 3 bytes, 1 char
    except UnicodeDecodeError:  # an offset inside a character (never at a rule's edge)
        return len(head.decode("utf-8", "ignore"))


def scan_batch(scan: Callable[[bytes], list[Any]], texts: Sequence[str]) -> list[list[RawHit]]:
    """Run ``scan`` once over ``texts`` joined by :data:`SEPARATOR`; hits per text.

    ``scan`` takes UTF-8 bytes and returns kingfisher findings (``rule_id``,
    ``visible``, ``location`` byte offsets). Invisible findings (components another
    rule needs, such as a client id) and hits across a separator are dropped. XML
    elements are made visible to the rules (see below).
    """
    out: list[list[RawHit]] = [[] for _ in texts]
    if not texts:
        return out
    encoded = [t.encode("utf-8", "surrogatepass") for t in texts]
    starts: list[int] = []
    pos = 0
    for data in encoded:
        starts.append(pos)
        pos += len(data) + len(_SEPARATOR_BYTES)
    # ``<`` becomes a space (same length, so offsets hold): rules end a value at a quote,
    # whitespace or ``;``, which misses ``<token>VALUE</token>``; ``>`` already counts as
    # an assignment for the keyword rules, so the element's name is the keyword.
    for finding in scan(_SEPARATOR_BYTES.join(encoded).replace(b"<", b" ")):
        if not finding.visible:
            continue
        loc = finding.location
        b_start, b_end = int(loc["start_offset"]), int(loc["end_offset"])
        index = bisect.bisect_right(starts, b_start) - 1
        if index < 0:
            continue
        data, text = encoded[index], texts[index]
        rel_start, rel_end = b_start - starts[index], b_end - starts[index]
        if rel_end > len(data) or rel_end <= rel_start:
            continue
        start = _char_offset(text, data, rel_start)
        end = _char_offset(text, data, rel_end)
        if end > start:
            decoded = str(finding.secret) if getattr(finding, "is_base64_encoded", False) else None
            out[index].append(
                RawHit(str(finding.rule_id), start, end, str(finding.confidence), decoded)
            )
    return out


# ---------------------------------------------------------------- the built-in engine
class _Loader:
    """Loads a kingfisher scanner once, in a background thread; :meth:`get` waits for it."""

    def __init__(self, build: Callable[[], Any], what: str) -> None:
        self._build = build
        self._what = what
        self._done = threading.Event()
        self._value: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"qsecure-{what}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._build()
        except BaseException as exc:  # noqa: BLE001 - re-raised to every caller of get()
            self._error = exc
        finally:
            self._done.set()

    def get(self) -> Any:
        self._done.wait()
        if self._error is not None:
            raise ScanError(
                f"the {self._what} could not be loaded: {self._error}",
                hint="reinstall jupyter-qsecure (it needs kingfisher-secret-scanner), "
                "or check that KF_RULE_CACHE_DIR / the user cache folder is writable",
            ) from self._error
        return self._value


def _build_builtin() -> Any:
    import kingfisher_sdk

    rules = kingfisher_sdk.Rules(confidence="medium")
    # Plain matching (no CLI context filters): our own placeholder and allowlist
    # filters apply to every layer; base64 blobs are decoded one layer deep.
    return kingfisher_sdk.Scanner(rules)


_builtin: _Loader | None = None
_builtin_lock = threading.Lock()


def builtin_loader() -> _Loader:
    """The process-wide loader of kingfisher's built-in rules (started on first call)."""
    global _builtin
    if _builtin is None:
        with _builtin_lock:
            if _builtin is None:
                _builtin = _Loader(_build_builtin, "kingfisher rule catalogue")
    return _builtin


def builtin_scan(data: bytes) -> list[Any]:
    """Scan UTF-8 bytes with the built-in catalogue (waits for it to load)."""
    scanner = builtin_loader().get()
    found: list[Any] = scanner.scan(data)
    return found


def plausible(secret: str) -> bool:
    """Not a placeholder, template or sequence (the filters our own detectors apply).

    kingfisher's rules carry their own filters for provider formats; generic ones (a
    password in a URL, a curl header) would otherwise report ``password``/``${PGPASS}``.
    """
    from detect_secrets.filters import heuristic

    from .detectors import looks_like_placeholder

    return not (
        looks_like_placeholder(secret)
        or heuristic.is_templated_secret(secret)
        or heuristic.is_prefixed_with_dollar_sign(secret)
        or heuristic.is_sequential_string(secret)
        or "«secret:" in secret
    )


#: Rules that find a value from the words around it (a curl flag or header), not from its
#: format: judged as the context layer judges a value beside a name
#: (:func:`.context.ruled_out`: no version, UUID, number, public example...), and a
#: ``user:password`` pair taken as its password (the secret, as the context layer and
#: detect-secrets' ``Basic Auth Credentials`` report it: one secret, one fingerprint).
_CONTEXT_FAMILIES = frozenset({"curl-auth-header", "curl-auth-user"})


def _context_value(family: str, text: str, start: int, end: int) -> tuple[int, int] | None:
    """The span of a context rule's secret, or None when the value is ruled out."""
    if family == "curl-auth-user":
        colon = text.find(":", start, end)
        if colon != -1:
            start = colon + 1
    from .context import ruled_out

    line_start = text.rfind("\n", max(0, start - 200), start) + 1
    if start >= end or ruled_out(text[start:end], text[max(line_start, start - 200) : start]):
        return None
    return start, end


def builtin_detections(texts: Sequence[str]) -> list[list[tuple[bool, Detection]]]:
    """Built-in provider findings per text: ``(high confidence, detection)`` with our types.

    A secret kingfisher found by decoding a base64 blob (one layer deep) spans the blob
    and is fingerprinted as the decoded secret, as an encoded injected value is (the
    scanner reports it as the same finding where its unit also holds it as written).
    """
    out: list[list[tuple[bool, Detection]]] = []
    for text, hits in zip(texts, scan_batch(builtin_scan, texts), strict=True):
        found = []
        for h in hits:
            start, end = h.start, h.end
            family = family_of(h.rule_id)
            if family in _CONTEXT_FAMILIES and h.decoded is None:
                span = _context_value(family, text, start, end)
                if span is None:
                    continue
                start, end = span
            secret = text[start:end]
            if h.decoded is not None and not plausible(h.decoded):
                continue
            if plausible(secret):
                detection = Detection(
                    provider_type(h.rule_id), secret, start, end, fingerprint_of=h.decoded
                )
                found.append((h.confidence == "high", detection))
        out.append(found)
    return out

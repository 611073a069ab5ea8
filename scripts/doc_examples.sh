#!/usr/bin/env bash
# Count evloop's public items and those whose doc comment holds an example
# (a ``` code block), from rustdoc's JSON output (nightly only).
#
#   bash scripts/doc_examples.sh          # counts, then the items without one
#   bash scripts/doc_examples.sh --count  # counts only
#
# "Public item": what rustdoc documents without --document-private-items
# (so #[doc(hidden)] items are left out): modules, structs, enums, traits,
# functions, methods of inherent impls and trait declarations, type
# aliases, constants, statics and macros. Not counted: fields, variants,
# impl blocks, and methods of trait impls (their docs are the trait's).
# Re-exports count once, at the item itself.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "needs a nightly toolchain: rustup toolchain install nightly" >&2
    exit 2
fi

target=${CARGO_TARGET_DIR:-target}/doc-json
CARGO_TARGET_DIR=$target cargo +nightly rustdoc --quiet --lib --all-features \
    -- -Z unstable-options --output-format json >&2

python3 - "$target/doc/evloop.json" "${1:-}" <<'PY'
import json, re, sys

doc = json.load(open(sys.argv[1]))
index, paths = doc["index"], doc["paths"]
KINDS = {"module", "struct", "enum", "trait", "function", "type_alias",
         "constant", "static", "macro", "union", "trait_alias"}
fence = re.compile(r"^\s*```", re.M)

def kind(item):
    inner = item["inner"]
    return next(iter(inner)) if isinstance(inner, dict) else inner

# Parents: an inherent impl's methods get the type's path; a trait's items
# get the trait's path; trait-impl methods are skipped.
owner = {}
for iid, item in index.items():
    k = kind(item)
    if k == "impl":
        impl = item["inner"]["impl"]
        if impl.get("trait") is not None or impl.get("synthetic") or impl.get("blanket_impl"):
            continue
        f = impl["for"]
        tid = f.get("resolved_path", {}).get("id") if isinstance(f, dict) else None
        for m in impl["items"]:
            owner[str(m)] = tid
    elif k == "trait":
        for m in item["inner"]["trait"]["items"]:
            owner[str(m)] = int(iid) if iid.isdigit() else iid

# Public paths: walk the modules from the crate root through `pub use`,
# so an item is named where a user finds it (shortest path wins).
public = {}
def walk(mid, prefix):
    for cid in index[str(mid)]["inner"]["module"]["items"]:
        child = index.get(str(cid))
        if child is None:
            continue
        k = kind(child)
        if k == "use":
            u = child["inner"]["use"]
            tid = u.get("id")
            if tid is None or str(tid) not in index:
                continue
            target = index[str(tid)]
            if u["is_glob"] and kind(target) == "module":
                walk(tid, prefix)
                continue
            name, cid, child, k = u["name"], tid, target, kind(target)
        else:
            name = child["name"]
        path = f"{prefix}::{name}"
        if str(cid) not in public or path.count("::") < public[str(cid)].count("::"):
            public[str(cid)] = path
            if k == "module":
                walk(cid, path)
walk(doc["root"], "evloop")
public[str(doc["root"])] = "evloop"

def path_of(iid):
    if str(iid) in public:
        return public[str(iid)]
    p = paths.get(str(iid))
    return "::".join(p["path"]) if p else None

items = []
for iid, item in index.items():
    if item.get("crate_id") != 0 or kind(item) not in KINDS:
        continue
    if item.get("visibility") != "public" and str(iid) not in owner:
        continue
    name = path_of(iid)
    if name is None:
        parent = owner.get(str(iid))
        if parent is None or path_of(parent) is None:
            continue
        name = f"{path_of(parent)}::{item['name']}"
    span = item.get("span") or {}
    where = f'{span.get("filename", "?")}:{(span.get("begin") or ["?"])[0]}'
    has = bool(fence.search(item.get("docs") or ""))
    items.append((name, kind(item), has, where))

items.sort()
with_ex = sum(1 for i in items if i[2])
print(f"public items: {len(items)}")
print(f"with a doc example: {with_ex}")
print(f"without: {len(items) - with_ex}")
if sys.argv[2] != "--count":
    print()
    for name, k, has, where in items:
        if not has:
            print(f"{k:10} {name}  ({where})")
PY

#!/usr/bin/env bash
# Builds every package (`pnpm build`: tsc's compiled ESM and .d.ts, then its entry
# points bundled into dist/bundle/ by scripts/bundle-dist.mjs, what the exports name) and packs
# each with `pnpm pack` into DIR (default: ./packed), the tarballs a user installs with npm:
#
#   bash scripts/pack.sh /some/folder        # or: pnpm pack:all /some/folder
#   npm install /some/folder/*.tgz           # in the user's project
#
# `pnpm pack` (not `npm pack`) rewrites `workspace:` and `catalog:` ranges into real versions
# and applies each package's publishConfig (exports pointing at dist/).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$(mkdir -p "${1:-$root/packed}" && cd "${1:-$root/packed}" && pwd)"
cd "$root"
# A fresh build: tsc -b leaves the outputs of moved or deleted sources in dist/, which would ship.
rm -rf packages/*/dist
pnpm --silent build
# The build a packed Cairn names (`cairn --version`, its records, what its workers compare; core's
# cairnBuild()): the commit, "-dirty" when the tree has changes. Two packs of different commits
# otherwise carry one version and were byte-identical.
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ "$commit" != unknown ] && [ -n "$(git status --porcelain 2>/dev/null)" ]; then commit="$commit-dirty"; fi
for pkg in cache core dsl process mlflow report worker cli cairn; do
  printf '{ "commit": "%s" }\n' "$commit" > "packages/$pkg/dist/build.json"
done
for pkg in cache core dsl process mlflow report worker cli cairn; do
  (cd "packages/$pkg" && pnpm pack --pack-destination "$out" >/dev/null)
done
ls "$out"/*.tgz

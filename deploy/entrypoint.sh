#!/bin/sh
# A compose validator's start (deploy/docker-compose.yml): on first start it creates its data
# directory — the first validator (//Alice) writes the dev genesis and shares it, the others
# wait for it — then runs the validator.
#   platform-entrypoint <dev hotkey URI> <this validator's IP> <bootstrap multiaddr>...
# Environment (defaults for the compose network): PLATFORM_DATA (/data), PLATFORM_SHARED
# (/shared), PLATFORM_HTTP (0.0.0.0:8080), PLATFORM_P2P_PORT (30333), PLATFORM_CHAIN_URL
# (http://172.28.0.10:9944).
set -eu
hotkey="$1"; ip="$2"; shift 2
data="${PLATFORM_DATA:-/data}"
shared="${PLATFORM_SHARED:-/shared}"
if [ ! -f "$data/config.toml" ]; then
  set -- "$@"
  bootstrap=""
  for peer in "$@"; do bootstrap="$bootstrap --bootstrap $peer"; done
  if [ "$hotkey" = "//Alice" ]; then
    genesis="--dev"
  else
    until [ -f "$shared/genesis.bin" ]; do sleep 1; done
    genesis="--genesis $shared/genesis.bin"
  fi
  # shellcheck disable=SC2086
  platform init --data-dir "$data" --hotkey "$hotkey" $genesis \
    --listen "/ip4/$ip/tcp/${PLATFORM_P2P_PORT:-30333}" --http "${PLATFORM_HTTP:-0.0.0.0:8080}" \
    --chain "${PLATFORM_CHAIN_URL:-http://172.28.0.10:9944}" $bootstrap
  if [ "$hotkey" = "//Alice" ]; then
    cp "$data/genesis.bin" "$shared/genesis.bin.tmp"
    mv "$shared/genesis.bin.tmp" "$shared/genesis.bin"
  fi
fi
exec platform run --config "$data/config.toml"

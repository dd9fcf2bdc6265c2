# Shared by the launch and benchmark scripts: `source Launch/lib.sh` from the repository root.

# build_release [CONFIG]: installs the Debian packages that are missing, builds (CONFIG, default
# release), sets $bin to the built products' directory and sources Launch/env.sh.
build_release() {
  bash Launch/setup.sh
  swift build -c "${1:-release}" >&2
  bin=$(swift build -c "${1:-release}" --show-bin-path)
  source Launch/env.sh
}

# world_size LAYOUT.json: prints the layout's "worldSize"; fails with one line when it has none.
world_size() {
  grep -o '"worldSize"[[:space:]]*:[[:space:]]*[0-9]*' "$1" | grep -o '[0-9]*$' \
    || { echo "$1 has no \"worldSize\"" >&2; return 1; }
}

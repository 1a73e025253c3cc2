# Sourced by scripts/test and scripts/demo: the environment of a BrainSAM build.
# shellcheck shell=bash
BRAINSAM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export BRAINSAM_ROOT
# cargo itself gets LIBTORCH from .cargo/config.toml; the python here is for the tests.
export PATH="$BRAINSAM_ROOT/.venv/bin:$PATH"

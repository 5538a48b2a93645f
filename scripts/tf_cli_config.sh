#!/usr/bin/env bash
# Print the Terraform CLI config file to use (for TF_CLI_CONFIG_FILE).
#
# Where the hashicorp providers are pre-installed in a local filesystem mirror (TF_PLUGIN_MIRROR,
# default /opt/tf-plugins), write a config that installs them from there and never from the
# registry, and print its path. Elsewhere print the caller's TF_CLI_CONFIG_FILE when that file
# exists, else nothing: Terraform then uses ~/.terraformrc and the public registry as usual.
set -euo pipefail

mirror="${TF_PLUGIN_MIRROR:-/opt/tf-plugins}"
out_dir="${1:-${TF_CLI_CONFIG_DIR:-$(cd "$(dirname "$0")/.." && pwd)/.cache/terraform}}"

if [[ -d "$mirror/registry.terraform.io/hashicorp" ]]; then
  mkdir -p "$out_dir"
  cfg="$out_dir/terraformrc"
  tmp="$(mktemp "$out_dir/.terraformrc.XXXXXX")"
  cat >"$tmp" <<HCL
# Written by scripts/tf_cli_config.sh: providers come from the local mirror $mirror.
provider_installation {
  filesystem_mirror {
    path    = "$mirror"
    include = ["registry.terraform.io/hashicorp/*"]
  }
  direct {
    exclude = ["registry.terraform.io/hashicorp/*"]
  }
}
HCL
  mv -f "$tmp" "$cfg"
  echo "$cfg"
elif [[ -n "${TF_CLI_CONFIG_FILE:-}" && -f "${TF_CLI_CONFIG_FILE}" ]]; then
  echo "$TF_CLI_CONFIG_FILE"
fi

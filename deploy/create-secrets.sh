#!/usr/bin/env bash
# Create the Secrets that ops provide (deploy/README.md, "Secrets"), where missing:
#   yishi-pg-SERVICE           PostgreSQL role password (kubernetes.io/basic-auth)
#   yishi-SERVICE-signing-key  Ed25519 private key for signed checkpoints (PKCS#8 PEM)
# Existing Secrets are left alone, so re-running never rotates a key by accident.
# Usage: deploy/create-secrets.sh NAMESPACE     (needs kubectl and openssl)
set -euo pipefail

namespace=${1:?usage: $0 NAMESPACE}
services=(proposals voting oversight notify portal)
workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT

exists() { kubectl -n "$namespace" get secret "$1" >/dev/null 2>&1; }

for service in "${services[@]}"; do
  db_secret="yishi-pg-$service"
  if exists "$db_secret"; then
    echo "kept    $db_secret"
  else
    # Hex: no character needs escaping anywhere the password travels.
    kubectl -n "$namespace" create secret generic "$db_secret" \
      --type=kubernetes.io/basic-auth \
      --from-literal=username="$service" \
      --from-literal=password="$(openssl rand -hex 24)"
    # CloudNativePG applies a changed password at once only on labelled Secrets.
    kubectl -n "$namespace" label secret "$db_secret" cnpg.io/reload=true
  fi

  key_secret="yishi-$service-signing-key"
  if exists "$key_secret"; then
    echo "kept    $key_secret"
  else
    openssl genpkey -algorithm ed25519 -out "$workdir/$service.pem"
    kubectl -n "$namespace" create secret generic "$key_secret" \
      --from-file=signing-key.pem="$workdir/$service.pem"
  fi
done

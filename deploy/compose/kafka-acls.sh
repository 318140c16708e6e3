#!/bin/bash
# The principals' ACLs on compose's broker (docs/security.md), added as `admin` once the
# broker is healthy. Adding an ACL that exists changes nothing, so every `up` may run it.
set -euo pipefail
umask 077
prefix=${LEDGER_TOPIC_PREFIX:-ledger}
config=/tmp/admin.properties
admin=$(cat /run/secrets/kafka-admin.password)
cat > "$config" <<PROPERTIES
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$admin";
ssl.truststore.type=PEM
ssl.truststore.location=/run/secrets/kafka-ca.crt
PROPERTIES
acl() { /opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9092 --command-config "$config" --add "$@"; }
# ledger: reads the inbox with its group, creates its four topics, writes and reads back
# the journal, the rejects and the signed checkpoints, owns the relays' transactional ids.
acl --allow-principal User:ledger --operation Read --operation Describe \
  --topic "$prefix.inbox" --group "$prefix.sequencer"
acl --allow-principal User:ledger --operation Create --operation Describe --topic "$prefix.inbox"
acl --allow-principal User:ledger --operation Write --operation Read --operation Describe \
  --operation Create --topic "$prefix.events" --topic "$prefix.rejects" \
  --topic "$prefix.checkpoints"
acl --allow-principal User:ledger --operation Write --operation Describe \
  --transactional-id "$prefix.journal-relay" --transactional-id "$prefix.rejects-relay" \
  --transactional-id "$prefix.checkpoint-relay"
# upstream: writes the inbox, nothing else.
acl --allow-principal User:upstream --operation Write --operation Describe --topic "$prefix.inbox"
# reader: reads the journal, the rejects and the checkpoints with its own group.
acl --allow-principal User:reader --operation Read --operation Describe \
  --topic "$prefix.events" --topic "$prefix.rejects" --topic "$prefix.checkpoints"
acl --allow-principal User:reader --operation Read --operation Describe --group "$prefix.reporting"

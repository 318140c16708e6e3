#!/bin/bash
# compose's Kafka with SASL/SCRAM over TLS and ACLs (docs/security.md). The broker's settings
# come from the service's KAFKA_* variables (KAFKA_FOO_BAR is foo.bar, as in the image);
# the passwords from the mounted secrets, written only into files of mode 0600. The SCRAM
# users are made when the storage is formatted, the first time.
set -euo pipefail
umask 077
secrets=/run/secrets
properties=/tmp/server.properties
admin_properties=/tmp/admin.properties

: > "$properties"
while IFS='=' read -r name value; do
  case "$name" in
    KAFKA_HEAP_OPTS | KAFKA_OPTS | KAFKA_LOG4J_OPTS | KAFKA_JMX_OPTS) ;;
    KAFKA_*) echo "$(echo "${name#KAFKA_}" | tr 'A-Z_' 'a-z.')=$value" >> "$properties" ;;
  esac
done < <(env)

admin=$(cat "$secrets/kafka-admin.password")
keystore=$(cat "$secrets/kafka-keystore.password")
jaas="org.apache.kafka.common.security.scram.ScramLoginModule required username=\"admin\" password=\"$admin\";"
cat >> "$properties" <<PROPERTIES
listener.name.internal.scram-sha-512.sasl.jaas.config=$jaas
listener.name.external.scram-sha-512.sasl.jaas.config=$jaas
ssl.keystore.type=PKCS12
ssl.keystore.location=$secrets/kafka-broker.p12
ssl.keystore.password=$keystore
ssl.key.password=$keystore
ssl.truststore.type=PEM
ssl.truststore.location=$secrets/kafka-ca.crt
PROPERTIES
cat > "$admin_properties" <<PROPERTIES
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=$jaas
ssl.truststore.type=PEM
ssl.truststore.location=$secrets/kafka-ca.crt
PROPERTIES

scram=()
for principal in admin ledger upstream reader; do
  scram+=(--add-scram "SCRAM-SHA-512=[name=$principal,password=$(cat "$secrets/kafka-$principal.password")]")
done
/opt/kafka/bin/kafka-storage.sh format --ignore-formatted --cluster-id "$CLUSTER_ID" \
  --config "$properties" "${scram[@]}"
exec /opt/kafka/bin/kafka-server-start.sh "$properties"

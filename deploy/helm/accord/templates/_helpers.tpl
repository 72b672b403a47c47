{{/* Names, labels and the pieces every workload shares. */}}

{{- define "accord.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "accord.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The name of one component's objects: <fullname>-<component> (component names are short). */}}
{{- define "accord.componentName" -}}
{{- printf "%s-%s" (include "accord.fullname" .root | trunc 52 | trimSuffix "-") .component -}}
{{- end -}}

{{- define "accord.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "accord.labels" -}}
helm.sh/chart: {{ include "accord.chart" . }}
app.kubernetes.io/name: {{ include "accord.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: accord
{{- end -}}

{{/* Labels of one component: call with (dict "root" $ "component" "api"). */}}
{{- define "accord.componentLabels" -}}
{{ include "accord.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "accord.selectorLabels" -}}
app.kubernetes.io/name: {{ include "accord.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "accord.image" -}}
{{- $image := .Values.image -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository (default .Chart.AppVersion $image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The Secret and key holding DATABASE_URL; fails clearly when both or neither are given. */}}
{{- define "accord.databaseSecretName" -}}
{{- if and .Values.database.url .Values.database.existingSecret -}}
{{- fail "set database.url or database.existingSecret, not both" -}}
{{- end -}}
{{- if .Values.database.existingSecret -}}
{{- .Values.database.existingSecret -}}
{{- else -}}
{{- $_ := required "database.url (or database.existingSecret) is required: the PostgreSQL URL, postgresql://user:password@host:5432/accord" .Values.database.url -}}
{{- printf "%s-database" (include "accord.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "accord.databaseSecretKey" -}}
{{- if .Values.database.existingSecret -}}
{{- .Values.database.existingSecretKey -}}
{{- else -}}
DATABASE_URL
{{- end -}}
{{- end -}}

{{/* Environment every container gets: the database URL from its Secret, and libpq's TLS variables. */}}
{{- define "accord.databaseEnv" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "accord.databaseSecretName" . }}
      key: {{ include "accord.databaseSecretKey" . }}
{{- with .Values.database.sslMode }}
- name: PGSSLMODE
  value: {{ . | quote }}
{{- end }}
{{- if .Values.database.sslRootCert.secretName }}
- name: PGSSLROOTCERT
  value: /etc/accord/postgresql/{{ .Values.database.sslRootCert.key }}
{{- end }}
{{- end -}}

{{- define "accord.kafkaSasl" -}}
{{- if hasPrefix "SASL_" .Values.kafka.securityProtocol -}}true{{- end -}}
{{- end -}}

{{- define "accord.kafkaTls" -}}
{{- if hasSuffix "SSL" .Values.kafka.securityProtocol -}}true{{- end -}}
{{- end -}}

{{/* The Secret holding the SASL password: kafka.sasl.existingSecret, or the one the chart generates. */}}
{{- define "accord.kafkaSecretName" -}}
{{- if and .Values.kafka.sasl.password .Values.kafka.sasl.existingSecret -}}
{{- fail "set kafka.sasl.password or kafka.sasl.existingSecret, not both" -}}
{{- end -}}
{{- if .Values.kafka.sasl.existingSecret -}}
{{- .Values.kafka.sasl.existingSecret -}}
{{- else -}}
{{- $_ := required "kafka.sasl.password (or kafka.sasl.existingSecret) is required with a SASL_ security protocol" .Values.kafka.sasl.password -}}
{{- printf "%s-kafka" (include "accord.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* Kafka's TLS and SASL settings (shared/settings.py), as container environment. */}}
{{- define "accord.kafkaEnv" -}}
- name: KAFKA_SECURITY_PROTOCOL
  value: {{ .Values.kafka.securityProtocol | quote }}
{{- if include "accord.kafkaSasl" . }}
- name: KAFKA_SASL_MECHANISM
  value: {{ required "kafka.sasl.mechanism is required with a SASL_ security protocol" .Values.kafka.sasl.mechanism | quote }}
- name: KAFKA_SASL_USERNAME
  value: {{ required "kafka.sasl.username is required with a SASL_ security protocol" .Values.kafka.sasl.username | quote }}
- name: KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "accord.kafkaSecretName" . }}
      key: {{ if .Values.kafka.sasl.existingSecret }}{{ .Values.kafka.sasl.existingSecretKey }}{{ else }}KAFKA_SASL_PASSWORD{{ end }}
{{- end }}
{{- if and (include "accord.kafkaTls" .) .Values.kafka.tls.ca.secretName }}
- name: KAFKA_SSL_CA_FILE
  value: /etc/accord/kafka-ca/{{ .Values.kafka.tls.ca.key }}
{{- end }}
{{- if and (include "accord.kafkaTls" .) .Values.kafka.tls.clientCert.secretName }}
- name: KAFKA_SSL_CERT_FILE
  value: /etc/accord/kafka-client/{{ .Values.kafka.tls.clientCert.certKey }}
- name: KAFKA_SSL_KEY_FILE
  value: /etc/accord/kafka-client/{{ .Values.kafka.tls.clientCert.keyKey }}
{{- end }}
{{- end -}}

{{- define "accord.tlsVolumeMounts" -}}
{{- if .Values.database.sslRootCert.secretName }}
- name: postgresql-ca
  mountPath: /etc/accord/postgresql
  readOnly: true
{{- end }}
{{- if and (include "accord.kafkaTls" .) .Values.kafka.tls.ca.secretName }}
- name: kafka-ca
  mountPath: /etc/accord/kafka-ca
  readOnly: true
{{- end }}
{{- if and (include "accord.kafkaTls" .) .Values.kafka.tls.clientCert.secretName }}
- name: kafka-client
  mountPath: /etc/accord/kafka-client
  readOnly: true
{{- end }}
{{- end -}}

{{- define "accord.tlsVolumes" -}}
{{- if .Values.database.sslRootCert.secretName }}
- name: postgresql-ca
  secret:
    secretName: {{ .Values.database.sslRootCert.secretName }}
    items:
      - key: {{ .Values.database.sslRootCert.key }}
        path: {{ .Values.database.sslRootCert.key }}
{{- end }}
{{- if and (include "accord.kafkaTls" .) .Values.kafka.tls.ca.secretName }}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafka.tls.ca.secretName }}
    items:
      - key: {{ .Values.kafka.tls.ca.key }}
        path: {{ .Values.kafka.tls.ca.key }}
{{- end }}
{{- if and (include "accord.kafkaTls" .) .Values.kafka.tls.clientCert.secretName }}
- name: kafka-client
  secret:
    secretName: {{ .Values.kafka.tls.clientCert.secretName }}
    defaultMode: 0400
    items:
      - key: {{ .Values.kafka.tls.clientCert.certKey }}
        path: {{ .Values.kafka.tls.clientCert.certKey }}
      - key: {{ .Values.kafka.tls.clientCert.keyKey }}
        path: {{ .Values.kafka.tls.clientCert.keyKey }}
{{- end }}
{{- end -}}

{{/* Pod-level settings every pod shares (jobs included). */}}
{{- define "accord.podCommon" -}}
automountServiceAccountToken: false
{{- with .Values.serviceAccountName }}
serviceAccountName: {{ . }}
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end -}}

{{/* The checksum of everything a pod reads from a Secret the chart renders, so a change rolls the pods. */}}
{{- define "accord.databaseChecksum" -}}
{{- printf "%s|%s|%s|%s|%s" .Values.database.url .Values.database.existingSecret .Values.database.existingSecretKey .Values.kafka.sasl.password .Values.kafka.sasl.existingSecret | sha256sum -}}
{{- end -}}

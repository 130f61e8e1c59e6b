{{/*
Names and labels.
*/}}
{{- define "reel.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "reel.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "reel.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "reel.selectorLabels" -}}
app.kubernetes.io/name: {{ include "reel.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "reel.labels" -}}
helm.sh/chart: {{ include "reel.chart" . }}
{{ include "reel.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: reel
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector of one projector group: (dict "root" $ "group" $g) */}}
{{- define "reel.groupSelectorLabels" -}}
{{ include "reel.selectorLabels" .root }}
app.kubernetes.io/component: projector
reel.dev/group: {{ .group.name }}
{{- end }}

{{- define "reel.groupFullname" -}}
{{- printf "%s-%s" (include "reel.fullname" .root) .group.name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "reel.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "reel.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "reel.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Where mounted Secrets appear inside the pods. */}}
{{- define "reel.secretDir" -}}/etc/reel/secrets{{- end }}

{{/*
reel.validate fails the render on mistakes values.schema.json cannot express
(cross-field rules). Every message names the value to change.
*/}}
{{- define "reel.validate" -}}
{{- $v := .Values }}
{{- $known := include "reel.knownProjections" . | splitList "," }}
{{- if and $v.catalog.files $v.catalog.existingConfigMap }}
{{- fail "catalog: give files or existingConfigMap, not both" }}
{{- end }}
{{- if and $v.projections.files $v.projections.existingConfigMap }}
{{- fail "projections: give files or existingConfigMap, not both" }}
{{- end }}
{{- if and $v.projections.names (not $v.projections.existingConfigMap) }}
{{- fail "projections.names: only with projections.existingConfigMap (inline files name themselves)" }}
{{- end }}
{{- $seenGroups := dict }}
{{- $seenProj := dict }}
{{- if not $v.groups }}
{{- fail "groups: at least one projector group is required" }}
{{- end }}
{{- range $i, $g := $v.groups }}
{{- if hasKey $seenGroups $g.name }}
{{- fail (printf "groups[%d].name: %q is used by two groups; group names must be unique" $i $g.name) }}
{{- end }}
{{- $_ := set $seenGroups $g.name true }}
{{- range $g.projections }}
{{- if not (has . $known) }}
{{- fail (printf "groups[%d].projections: unknown projection %q (known: %s; extend projectionCatalog for a custom image)" $i . (join ", " $known)) }}
{{- end }}
{{- if hasKey $seenProj . }}
{{- fail (printf "groups[%d].projections: projection %q is already in group %q; each projection runs in one group" $i . (get $seenProj .)) }}
{{- end }}
{{- $_ := set $seenProj . $g.name }}
{{- end }}
{{- $partitions := int $g.partitions }}
{{- $replicas := int (default 1 $g.replicas) }}
{{- if gt $replicas $partitions }}
{{- fail (printf "groups[%d] (%s): replicas %d > partitions %d; a projector replica beyond the topic's partition count sits idle. Lower replicas or add partitions to the topic and raise partitions" $i $g.name $replicas $partitions) }}
{{- end }}
{{- $as := include "reel.autoscaling" (dict "root" $ "group" $g) | fromYaml }}
{{- if $as.enabled }}
{{- $max := int $as.maxReplicas }}
{{- if gt $max $partitions }}
{{- fail (printf "groups[%d] (%s): autoscaling.maxReplicas %d > partitions %d; the HPA must not scale beyond the partition count" $i $g.name $max $partitions) }}
{{- end }}
{{- if gt (int $as.minReplicas) $max }}
{{- fail (printf "groups[%d] (%s): autoscaling.minReplicas %d > maxReplicas %d" $i $g.name (int $as.minReplicas) $max) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and $v.kafka.sasl.mechanism (not $v.kafka.sasl.existingSecret) }}
{{- fail "kafka.sasl.existingSecret: required when kafka.sasl.mechanism is set (the Secret holding the SASL password under kafka.sasl.passwordKey)" }}
{{- end }}
{{- if and $v.kafka.sasl.mechanism (not $v.kafka.sasl.username) }}
{{- fail "kafka.sasl.username: required when kafka.sasl.mechanism is set" }}
{{- end }}
{{- if or (and $v.kafka.tls.certKey (not $v.kafka.tls.keyKey)) (and $v.kafka.tls.keyKey (not $v.kafka.tls.certKey)) }}
{{- fail "kafka.tls.certKey and kafka.tls.keyKey: set both (mutual TLS) or neither" }}
{{- end }}
{{- if and (or $v.kafka.tls.certKey $v.kafka.tls.keyKey) (not $v.kafka.tls.existingSecret) }}
{{- fail "kafka.tls.existingSecret: required when kafka.tls.certKey/keyKey are set" }}
{{- end }}
{{- if and $v.kafka.tls.existingSecret (not $v.kafka.tls.enabled) }}
{{- fail "kafka.tls.existingSecret is set but kafka.tls.enabled is false; enable TLS or remove the Secret" }}
{{- end }}
{{- if and $v.clickhouse.tls.existingSecret (not $v.clickhouse.tls.enabled) }}
{{- fail "clickhouse.tls.existingSecret is set but clickhouse.tls.enabled is false; enable TLS or remove the Secret" }}
{{- end }}
{{- if and $v.clickhouse.existingSecret (not $v.clickhouse.username) }}
{{- fail "clickhouse.username: required when clickhouse.existingSecret (the password) is set" }}
{{- end }}
{{- if and $v.schemaRegistry.existingSecret (not $v.schemaRegistry.url) }}
{{- fail "schemaRegistry.url: required when schemaRegistry.existingSecret is set" }}
{{- end }}
{{- if and $v.podDisruptionBudget.enabled (hasKey $v.podDisruptionBudget "minAvailable") (hasKey $v.podDisruptionBudget "maxUnavailable") }}
{{- if and (not (kindIs "invalid" $v.podDisruptionBudget.minAvailable)) (not (kindIs "invalid" $v.podDisruptionBudget.maxUnavailable)) }}
{{- fail "podDisruptionBudget: set maxUnavailable or minAvailable, not both (set the other to null)" }}
{{- end }}
{{- end }}
{{- range $i, $r := $v.rebuilds }}
{{- if not (has $r.projection $known) }}
{{- fail (printf "rebuilds[%d].projection: unknown projection %q (known: %s)" $i $r.projection (join ", " $known)) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Projection names groups and rebuilds may use: projectionCatalog (the image's
built-in ones), projections.names, and the name of every inline projection
file. Comma-separated.
*/}}
{{- define "reel.knownProjections" -}}
{{- $v := .Values }}
{{- $names := concat (default (list) $v.projectionCatalog) (default (list) $v.projections.names) }}
{{- range $file, $text := $v.projections.files }}
{{- $doc := fromYaml $text }}
{{- if hasKey $doc "Error" }}
{{- fail (printf "projections.files[%s]: not YAML: %s" $file $doc.Error) }}
{{- end }}
{{- if not $doc.name }}
{{- fail (printf "projections.files[%s]: no name" $file) }}
{{- end }}
{{- $names = append $names $doc.name }}
{{- end }}
{{- join "," (uniq $names) }}
{{- end }}

{{/* ConfigMaps holding the catalog and the projections; "" when none. */}}
{{- define "reel.catalogConfigMap" -}}
{{- if .Values.catalog.existingConfigMap }}{{ .Values.catalog.existingConfigMap }}{{ else if .Values.catalog.files }}{{ include "reel.fullname" . }}-catalog{{ end }}
{{- end }}
{{- define "reel.projectionsConfigMap" -}}
{{- if .Values.projections.existingConfigMap }}{{ .Values.projections.existingConfigMap }}{{ else if .Values.projections.files }}{{ include "reel.fullname" . }}-projections{{ end }}
{{- end }}
{{- define "reel.catalogDir" -}}/etc/reel/catalog{{- end }}
{{- define "reel.projectionsDir" -}}/etc/reel/projections{{- end }}

{{/* A group's autoscaling settings: the global ones overridden by the group's, maxReplicas 0 → partitions. */}}
{{- define "reel.autoscaling" -}}
{{- $as := deepCopy .root.Values.autoscaling }}
{{- with .group.autoscaling }}
{{- $as = mergeOverwrite $as (deepCopy .) }}
{{- end }}
{{- if not (int $as.maxReplicas) }}
{{- $_ := set $as "maxReplicas" (int .group.partitions) }}
{{- end }}
{{- toYaml $as }}
{{- end }}

{{/*
reel.config is reel.yaml for the given projections:
(dict "root" $ "projections" (list …)). Secrets appear only as file paths.
*/}}
{{- define "reel.config" -}}
{{- $v := .root.Values }}
{{- $dir := include "reel.secretDir" .root }}
{{- $ktls := dict "enabled" $v.kafka.tls.enabled "insecureSkipVerify" $v.kafka.tls.insecureSkipVerify "caFile" "" "certFile" "" "keyFile" "" }}
{{- if and $v.kafka.tls.enabled $v.kafka.tls.existingSecret }}
{{- if $v.kafka.tls.caKey }}{{ $_ := set $ktls "caFile" (printf "%s/kafka-tls/%s" $dir $v.kafka.tls.caKey) }}{{ end }}
{{- if $v.kafka.tls.certKey }}{{ $_ := set $ktls "certFile" (printf "%s/kafka-tls/%s" $dir $v.kafka.tls.certKey) }}{{ end }}
{{- if $v.kafka.tls.keyKey }}{{ $_ := set $ktls "keyFile" (printf "%s/kafka-tls/%s" $dir $v.kafka.tls.keyKey) }}{{ end }}
{{- end }}
{{- $sasl := dict "mechanism" $v.kafka.sasl.mechanism "username" $v.kafka.sasl.username "passwordFile" "" }}
{{- if and $v.kafka.sasl.mechanism $v.kafka.sasl.existingSecret }}
{{- $_ := set $sasl "passwordFile" (printf "%s/kafka-sasl/%s" $dir $v.kafka.sasl.passwordKey) }}
{{- end }}
{{- $sr := dict "url" $v.schemaRegistry.url "username" $v.schemaRegistry.username "passwordFile" "" }}
{{- if $v.schemaRegistry.existingSecret }}
{{- $_ := set $sr "passwordFile" (printf "%s/schema-registry/%s" $dir $v.schemaRegistry.passwordKey) }}
{{- end }}
{{- $chtls := dict "enabled" $v.clickhouse.tls.enabled "insecureSkipVerify" $v.clickhouse.tls.insecureSkipVerify "caFile" "" }}
{{- if and $v.clickhouse.tls.enabled $v.clickhouse.tls.existingSecret }}
{{- $_ := set $chtls "caFile" (printf "%s/clickhouse-tls/%s" $dir $v.clickhouse.tls.caKey) }}
{{- end }}
{{- $ch := dict "dsn" $v.clickhouse.dsn "username" $v.clickhouse.username "passwordFile" "" "tls" $chtls }}
{{- if $v.clickhouse.existingSecret }}
{{- $_ := set $ch "passwordFile" (printf "%s/clickhouse/%s" $dir $v.clickhouse.passwordKey) }}
{{- end }}
{{- $http := dict "listen" (printf ":%d" (int $v.http.port)) "adminTokenFile" "" }}
{{- if $v.admin.existingSecret }}
{{- $_ := set $http "adminTokenFile" (printf "%s/admin/%s" $dir $v.admin.tokenKey) }}
{{- end }}
{{- $p := $v.projector }}
{{- $proj := dict "projections" (default (list) .projections) "batchEvents" (int $p.batchEvents) "batchBytes" (int64 $p.batchBytes) "flushInterval" $p.flushInterval "insertTimeout" $p.insertTimeout "retryMin" $p.retryMin "retryMax" $p.retryMax "shutdownTimeout" $p.shutdownTimeout "stateCacheBytes" (int64 $p.stateCacheBytes) "stateCacheSize" (int (default 0 $p.stateCacheSize)) "maxPendingBytes" (int64 $p.maxPendingBytes) "maxPending" (int (default 0 $p.maxPending)) "fetchMaxBytes" (int64 $p.fetchMaxBytes) "fetchMaxPartitionBytes" (int64 $p.fetchMaxPartitionBytes) "fetchMinBytes" (int64 $p.fetchMinBytes) "fetchMaxWait" $p.fetchMaxWait "fenceCheckInterval" $p.fenceCheckInterval "pipeline" (default false $p.pipeline) "generationPoll" $p.generationPoll "durable" (default false $p.durable) }}
{{- $cfg := dict
  "kafka" (dict "brokers" $v.kafka.brokers "clientId" $v.kafka.clientId "tls" $ktls "sasl" $sasl)
  "schemaRegistry" $sr
  "clickhouse" $ch
  "projector" $proj
  "http" $http
  "log" (dict "level" $v.log.level "format" $v.log.format) }}
{{- if include "reel.catalogConfigMap" .root }}
{{- $_ := set $cfg "catalog" (dict "dir" (include "reel.catalogDir" .root)) }}
{{- end }}
{{- if include "reel.projectionsConfigMap" .root }}
{{- $_ := set $cfg "projections" (dict "dir" (include "reel.projectionsDir" .root)) }}
{{- end }}
{{- toYaml $cfg }}
{{- end }}

{{/*
Secret volumes and mounts shared by projectors and Jobs. Only the keys Reel
reads are projected into the pod.
*/}}
{{- define "reel.secretVolumes" -}}
{{- $v := .Values }}
{{- if and $v.kafka.tls.enabled $v.kafka.tls.existingSecret }}
- name: kafka-tls
  secret:
    secretName: {{ $v.kafka.tls.existingSecret }}
    defaultMode: 0440
    items:
      {{- range (list $v.kafka.tls.caKey $v.kafka.tls.certKey $v.kafka.tls.keyKey) }}
      {{- if . }}
      - key: {{ . }}
        path: {{ . }}
      {{- end }}
      {{- end }}
{{- end }}
{{- if and $v.kafka.sasl.mechanism $v.kafka.sasl.existingSecret }}
- name: kafka-sasl
  secret:
    secretName: {{ $v.kafka.sasl.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ $v.kafka.sasl.passwordKey }}
        path: {{ $v.kafka.sasl.passwordKey }}
{{- end }}
{{- if $v.schemaRegistry.existingSecret }}
- name: schema-registry
  secret:
    secretName: {{ $v.schemaRegistry.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ $v.schemaRegistry.passwordKey }}
        path: {{ $v.schemaRegistry.passwordKey }}
{{- end }}
{{- if $v.clickhouse.existingSecret }}
- name: clickhouse
  secret:
    secretName: {{ $v.clickhouse.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ $v.clickhouse.passwordKey }}
        path: {{ $v.clickhouse.passwordKey }}
{{- end }}
{{- if and $v.clickhouse.tls.enabled $v.clickhouse.tls.existingSecret }}
- name: clickhouse-tls
  secret:
    secretName: {{ $v.clickhouse.tls.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ $v.clickhouse.tls.caKey }}
        path: {{ $v.clickhouse.tls.caKey }}
{{- end }}
{{- if $v.admin.existingSecret }}
- name: admin
  secret:
    secretName: {{ $v.admin.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ $v.admin.tokenKey }}
        path: {{ $v.admin.tokenKey }}
{{- end }}
{{- end }}

{{- define "reel.secretMounts" -}}
{{- $v := .Values }}
{{- $dir := include "reel.secretDir" . }}
{{- if and $v.kafka.tls.enabled $v.kafka.tls.existingSecret }}
- name: kafka-tls
  mountPath: {{ $dir }}/kafka-tls
  readOnly: true
{{- end }}
{{- if and $v.kafka.sasl.mechanism $v.kafka.sasl.existingSecret }}
- name: kafka-sasl
  mountPath: {{ $dir }}/kafka-sasl
  readOnly: true
{{- end }}
{{- if $v.schemaRegistry.existingSecret }}
- name: schema-registry
  mountPath: {{ $dir }}/schema-registry
  readOnly: true
{{- end }}
{{- if $v.clickhouse.existingSecret }}
- name: clickhouse
  mountPath: {{ $dir }}/clickhouse
  readOnly: true
{{- end }}
{{- if and $v.clickhouse.tls.enabled $v.clickhouse.tls.existingSecret }}
- name: clickhouse-tls
  mountPath: {{ $dir }}/clickhouse-tls
  readOnly: true
{{- end }}
{{- if $v.admin.existingSecret }}
- name: admin
  mountPath: {{ $dir }}/admin
  readOnly: true
{{- end }}
{{- end }}

{{/*
Pod-level pieces every Reel pod shares: (dict "root" $ "configMap" name "configKey" key).
*/}}
{{- define "reel.volumes" -}}
- name: config
  configMap:
    name: {{ .configMap }}
    items:
      - key: {{ .configKey }}
        path: reel.yaml
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- include "reel.catalogVolumes" .root }}
{{- include "reel.secretVolumes" .root }}
{{- with .root.Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "reel.volumeMounts" -}}
- name: config
  mountPath: /etc/reel/reel.yaml
  subPath: reel.yaml
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- include "reel.catalogMounts" .root }}
{{- include "reel.secretMounts" .root }}
{{- with .root.Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The catalog and projections ConfigMaps as directories of files. */}}
{{- define "reel.catalogVolumes" -}}
{{- with include "reel.catalogConfigMap" . }}
- name: catalog
  configMap:
    name: {{ . }}
{{- end }}
{{- with include "reel.projectionsConfigMap" . }}
- name: projections
  configMap:
    name: {{ . }}
{{- end }}
{{- end }}

{{- define "reel.catalogMounts" -}}
{{- if include "reel.catalogConfigMap" . }}
- name: catalog
  mountPath: {{ include "reel.catalogDir" . }}
  readOnly: true
{{- end }}
{{- if include "reel.projectionsConfigMap" . }}
- name: projections
  mountPath: {{ include "reel.projectionsDir" . }}
  readOnly: true
{{- end }}
{{- end }}

{{/* The config key of a group in the ConfigMap. */}}
{{- define "reel.groupConfigKey" -}}
{{- printf "group-%s.yaml" .name }}
{{- end }}

{{/* Hash of the rendered config: changing it rolls the pods. */}}
{{- define "reel.configChecksum" -}}
{{- print (include (print .Template.BasePath "/configmap.yaml") .) (include (print .Template.BasePath "/catalog-configmap.yaml") .) | sha256sum }}
{{- end }}

{{/* Container fields shared by every Reel container. */}}
{{- define "reel.containerCommon" -}}
image: {{ include "reel.image" . }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
{{- end }}

{{/* Pod fields shared by every Reel pod. */}}
{{- define "reel.podCommon" -}}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- end }}

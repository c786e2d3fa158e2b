{{/* Name of the operator's objects: the release name, or fullnameOverride. */}}
{{- define "memory-operator.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Labels of every object of the chart. `app.kubernetes.io/name: memory-operator` is fixed: the
NetworkPolicies the operator renders let pods with this label reach Qdrant.
*/}}
{{- define "memory-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "memory-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: memory-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "memory-operator.selectorLabels" -}}
app.kubernetes.io/name: memory-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "memory-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "memory-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
A repository pulled from `imageRegistry` instead of its own registry: the first path component is
replaced when it names a registry (it has a dot or a port, or is localhost), else the registry is put
before it (a Docker Hub name). The operator moves the stores' default images by the same rule.
*/}}
{{- define "memory-operator.relocate" -}}
{{- $repository := .repository -}}
{{- with .registry -}}
{{- $first := first (splitList "/" $repository) -}}
{{- $path := $repository -}}
{{- if and (contains "/" $repository) (or (contains "." $first) (contains ":" $first) (eq $first "localhost")) -}}
{{- $path = join "/" (rest (splitList "/" $repository)) -}}
{{- end -}}
{{- $repository = printf "%s/%s" (trimSuffix "/" .) $path -}}
{{- end -}}
{{- $repository -}}
{{- end -}}

{{- define "memory-operator.image" -}}
{{- $repository := include "memory-operator.relocate" (dict "repository" .Values.image.repository "registry" .Values.imageRegistry) -}}
{{- printf "%s:%s" $repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The jobs run the operator's image unless told otherwise. */}}
{{- define "memory-operator.jobImage" -}}
{{- $repository := default .Values.image.repository .Values.jobs.image.repository -}}
{{- $repository = include "memory-operator.relocate" (dict "repository" $repository "registry" .Values.imageRegistry) -}}
{{- $tag := default (default .Chart.AppVersion .Values.image.tag) .Values.jobs.image.tag -}}
{{- printf "%s:%s" $repository $tag -}}
{{- end -}}

{{/* `name,...` of a list of references, as the operator's pull secret flag takes it. */}}
{{- define "memory-operator.names" -}}
{{- $names := list -}}
{{- range . -}}
{{- $names = append $names .name -}}
{{- end -}}
{{- join "," $names -}}
{{- end -}}

{{/* `key=value,...` of a map, as the operator's selector flags take it. */}}
{{- define "memory-operator.labelList" -}}
{{- $pairs := list -}}
{{- range $key, $value := . -}}
{{- $pairs = append $pairs (printf "%s=%s" $key $value) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}

{{/*
What the operator may do in the namespaces it watches (docs/security.md explains each rule).
Namespaced resources only; `memory-operator.clusterRules` holds the cluster-scoped ones.
*/}}
{{- define "memory-operator.namespacedRules" -}}
# Exactly what operator/memory_operator/controller/permissions.py declares (tests/install checks it, and
# the end-to-end suite checks from the API server's audit log that the operator uses all of it).
# The watch cache, and Kopf's finalizer and annotations.
- apiGroups: ["memory-operator.io"]
  resources: ["memorystores", "memorypolicies"]
  verbs: ["list", "watch", "patch"]
# Scheduled backups are created; adoption and retention label them; deletionPolicy Delete removes them.
- apiGroups: ["memory-operator.io"]
  resources: ["memorybackups"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# MemoryClients: the watch cache (event handlers only: Kopf keeps no state on them).
- apiGroups: ["memory-operator.io"]
  resources: ["memoryclients"]
  verbs: ["list", "watch"]
# MemoryErasures: the watch cache, and Kopf's finalizer while an erasure waits to run again.
- apiGroups: ["memory-operator.io"]
  resources: ["memoryerasures"]
  verbs: ["list", "watch", "patch"]
# Status: server-side apply, one field manager per writer.
- apiGroups: ["memory-operator.io"]
  resources: ["memorystores/status", "memorypolicies/status", "memorybackups/status", "memoryclients/status", "memoryerasures/status"]
  verbs: ["patch"]
# Owner references that block deletion (admission checks it).
- apiGroups: ["memory-operator.io"]
  resources: ["memorystores/finalizers", "memorybackups/finalizers", "memoryclients/finalizers", "memoryerasures/finalizers"]
  verbs: ["update"]
# Children applied (server-side apply making an object is authorised as `create`) and pruned.
- apiGroups: [""]
  resources: ["configmaps", "persistentvolumeclaims"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# Children that live as long as the store (never deleted), and the generated keys.
- apiGroups: [""]
  resources: ["services", "serviceaccounts", "secrets"]
  verbs: ["list", "watch", "create", "patch"]
# The jobs' pods, for their termination messages.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
# `get`: waiting for a StatefulSet recreated for new volume templates.
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["list", "watch", "create", "patch", "delete", "get"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["list", "watch", "create", "patch"]
- apiGroups: ["batch"]
  resources: ["cronjobs", "jobs"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# A store's cert-manager Certificate (tls.issuerRef), watched once cert-manager is installed.
- apiGroups: ["cert-manager.io"]
  resources: ["certificates"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# Kopf's peering between replicas watching listed namespaces: one object in each (`get`: whether
# this replica is the one that runs the stores' timers).
- apiGroups: ["kopf.dev"]
  resources: ["kopfpeerings"]
  verbs: ["list", "watch", "create", "patch", "get"]
{{- end -}}

{{/* Kopf discovers the CRDs in every mode; watching every namespace, its peering is cluster-wide. */}}
{{- define "memory-operator.clusterRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- if .Values.rbac.clusterWide }}
# Kopf's peering between replicas watching every namespace (the operator creates the object; `get`:
# whether this replica is the one that runs the stores' timers).
- apiGroups: ["kopf.dev"]
  resources: ["clusterkopfpeerings"]
  verbs: ["list", "watch", "create", "patch", "get"]
{{- end }}
{{- end -}}


# Local Kubernetes with kind: a three-node cluster, the images built and loaded into it,
# the chart deployed, one pipeline run started and followed. docs/kind.md walks through
# it; the Makefile includes this file.
#
#   make kind-up images kind-load deploy k8s-run
#   make kind-down
#
# Every variable below can be overridden: `make deploy K8S_NAMESPACE=ml SPEC=my.yaml`.
# Images are tagged with the code version (`python -m mlbatch.codeversion`), never
# `latest`, and the chart pulls them with imagePullPolicy IfNotPresent, so the copies
# loaded into the kind nodes are the ones that run.

# `make deploy` and `make k8s-run` aim at the one-node cluster of `make cluster-up`
# (mk/cluster.mk) while it is up, with the kubectl and helm built for it; else at kind.
CLUSTER_STATE    ?= /var/tmp/mlbatch-cluster/state
ifneq ($(wildcard $(CLUSTER_STATE)/kubeconfig),)
export KUBECONFIG := $(CLUSTER_STATE)/kubeconfig
KUBE_CONTEXT     ?= mlbatch
KUBECTL          ?= $(shell cat $(CLUSTER_STATE)/bin)/kubectl
HELM             ?= $(shell cat $(CLUSTER_STATE)/bin)/helm
HELM_VALUES      ?= charts/mlbatch/ci/cluster-values.yaml
endif
KIND             ?= kind
KUBECTL          ?= kubectl
HELM             ?= helm
KIND_CLUSTER     ?= mlbatch
KIND_CONFIG      ?= kind-config.yaml
KIND_CONTEXT     ?= kind-$(KIND_CLUSTER)
KUBE_CONTEXT     ?= $(KIND_CONTEXT)
K8S_NAMESPACE    ?= mlbatch
HELM_RELEASE     ?= mlbatch
HELM_VALUES      ?= charts/mlbatch/ci/kind-values.yaml
SPEC             ?= examples/flights.yaml
IMAGE_REPOSITORY ?= localhost/mlbatch
IMAGE_NAMES      ?= etl explore features train evaluate predict controller
BASE_IMAGE       ?= python:3.11-slim
# podman when it is installed, else docker.
CONTAINER_ENGINE ?= $(shell command -v podman >/dev/null 2>&1 && echo podman || echo docker)
KIND_PYTHON      ?= .venv/bin/python
# Computed once, on first use (not at every make invocation). Each image is tagged with
# its own code version (`image_tag NAME` below); CODE_VERSION is the controller's.
CODE_VERSION     ?= $(eval CODE_VERSION := $(shell $(KIND_PYTHON) -m mlbatch.codeversion))$(CODE_VERSION)
TRAIN_VERSION    ?= $(eval TRAIN_VERSION := $(shell $(KIND_PYTHON) -m mlbatch.codeversion train))$(TRAIN_VERSION)
# Shell snippet: the tag of image $$name (a stage's code version; the controller's for it).
image_tag = $$($(KIND_PYTHON) -m mlbatch.codeversion $$([ $$name = controller ] || echo $$name))
# The chart's CronJob is named like its other objects: <release>-mlbatch, or the release
# name alone when it already contains "mlbatch".
K8S_CRONJOB      ?= $(if $(findstring mlbatch,$(HELM_RELEASE)),$(HELM_RELEASE),$(HELM_RELEASE)-mlbatch)
# The controller Job of `make k8s-run`; its name becomes the run's name. Fixed once.
RUN_JOB          ?= $(eval RUN_JOB := $(HELM_RELEASE)-$(shell date +%Y%m%d-%H%M%S))$(RUN_JOB)

KUBECTL_NS = $(KUBECTL) --context $(KUBE_CONTEXT) --namespace $(K8S_NAMESPACE)

.PHONY: kind-up images kind-load deploy k8s-run kind-down

kind-up: ## create the kind cluster of kind-config.yaml (skipped when it exists)
	@if $(KIND) get clusters 2>/dev/null | grep -qx '$(KIND_CLUSTER)'; then \
	  echo "kind cluster $(KIND_CLUSTER) already exists"; \
	else \
	  $(KIND) create cluster --name $(KIND_CLUSTER) --config $(KIND_CONFIG) --wait 180s; \
	fi
	$(KUBECTL) --context $(KIND_CONTEXT) get nodes --label-columns mlbatch.io/pool

# `images` moved to mk/images.mk; read here too, so this file still works alone
# (`make -f mk/kind.mk images kind-load`), and not twice when the Makefile read it first.
-include $(filter-out $(MAKEFILE_LIST),mk/images.mk)

# kind opens an image archive once per node, so podman's archive goes through a file.
kind-load: ## copy the images into the kind cluster's worker nodes
	@test -n "$(CODE_VERSION)" || { echo "no code version: run 'make setup' first" >&2; exit 1; }
	@nodes=$$($(KIND) get nodes --name $(KIND_CLUSTER) | grep -v control-plane | paste -sd, -); \
	test -n "$$nodes" || { echo "no kind cluster $(KIND_CLUSTER): run 'make kind-up'" >&2; exit 1; }; \
	for name in $(IMAGE_NAMES); do \
	  image=$(IMAGE_REPOSITORY)-$$name:$(image_tag); \
	  echo "loading $$image into $$nodes"; \
	  if [ "$(CONTAINER_ENGINE)" = podman ]; then \
	    dir=$$(mktemp -d -t mlbatch-image.XXXXXX) || exit 1; \
	    podman save --format docker-archive -o $$dir/image.tar $$image \
	      && $(KIND) load image-archive $$dir/image.tar --name $(KIND_CLUSTER) --nodes $$nodes; \
	    status=$$?; rm -rf $$dir; test $$status -eq 0 || exit $$status; \
	  else \
	    $(KIND) load docker-image $$image --name $(KIND_CLUSTER) --nodes $$nodes || exit 1; \
	  fi; \
	done

deploy: ## install or upgrade the chart (namespace enforcing Pod Security "restricted")
	@test -n "$(CODE_VERSION)" || { echo "no code version: run 'make setup' first" >&2; exit 1; }
	$(KUBECTL) --context $(KUBE_CONTEXT) create namespace $(K8S_NAMESPACE) --dry-run=client -o yaml \
	  | $(KUBECTL) --context $(KUBE_CONTEXT) apply -f -
	$(KUBECTL) --context $(KUBE_CONTEXT) label namespace $(K8S_NAMESPACE) --overwrite \
	  pod-security.kubernetes.io/enforce=restricted pod-security.kubernetes.io/warn=restricted
	$(HELM) upgrade --install $(HELM_RELEASE) charts/mlbatch \
	  --kube-context $(KUBE_CONTEXT) --namespace $(K8S_NAMESPACE) \
	  --values $(HELM_VALUES) \
	  --set image.repository=$(IMAGE_REPOSITORY) --set image.tag=$(CODE_VERSION) --set ray.imageTag=$(TRAIN_VERSION) \
	  --set-file pipeline.spec=$(SPEC) \
	  --wait --timeout 10m

k8s-run: ## start one run from the CronJob template and follow it to the end
	$(KUBECTL_NS) create job --from=cronjob/$(K8S_CRONJOB) $(RUN_JOB)
	@echo "following the controller of $(RUN_JOB) (Ctrl-C stops following, not the run)"
	-$(KUBECTL_NS) logs --follow --pod-running-timeout=10m job/$(RUN_JOB)
	@while :; do \
	  conditions=$$($(KUBECTL_NS) get job $(RUN_JOB) \
	    -o jsonpath='{.status.conditions[?(@.status=="True")].type}'); \
	  case " $$conditions " in \
	    *" Complete "*) echo "run $(RUN_JOB): complete"; break ;; \
	    *" Failed "*) echo "run $(RUN_JOB): failed"; \
	      $(KUBECTL_NS) describe job $(RUN_JOB) | tail -n 20; exit 1 ;; \
	  esac; \
	  echo "run $(RUN_JOB): still running (controller restarted?); waiting"; sleep 10; \
	done

kind-down: ## delete the kind cluster and everything in it
	$(KIND) delete cluster --name $(KIND_CLUSTER)

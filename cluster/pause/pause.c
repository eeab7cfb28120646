/* The pod sandbox's one process, as Kubernetes' build/pause does: it holds the pod's
 * namespaces, reaps orphaned children and exits on SIGINT/SIGTERM. Written here because
 * no registry can be reached for registry.k8s.io/pause. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void terminate(int signal_number) { _exit(0); }

static void reap(int signal_number) {
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(int argc, char **argv) {
  if (getpid() != 1) fprintf(stderr, "pause: warning: not pid 1\n");
  struct sigaction action;
  memset(&action, 0, sizeof(action));
  action.sa_handler = terminate;
  if (sigaction(SIGINT, &action, NULL) < 0 || sigaction(SIGTERM, &action, NULL) < 0) return 1;
  action.sa_handler = reap;
  action.sa_flags = SA_NOCLDSTOP;
  if (sigaction(SIGCHLD, &action, NULL) < 0) return 2;
  for (;;) pause();
  return 42;
}

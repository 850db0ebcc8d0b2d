/* hack/bench-seccomp.sh: N getpid(2) calls, each one through the seccomp filter. */
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
	long n = argc > 1 ? atol(argv[1]) : 1000000;
	for (long i = 0; i < n; i++)
		syscall(SYS_getpid); /* not getpid(): no libc may cache it */
	return 0;
}

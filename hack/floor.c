/* hack/bench.sh: the floor of a container `run` on this host, what any runtime has to do at least.
 * floor ROOTFS NAME: makes the cgroup NAME in every mounted hierarchy (each v1 one and the v2
 * one), clones a child into new mount/uts/ipc/net/pid/cgroup namespaces, writes it into every
 * cgroup.procs, lets it chroot into ROOTFS and exec /bin/true, waits, removes the cgroups.
 * No pivot_root, mounts, devices, capabilities or seccomp: those are the runtime's extra. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <mntent.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dirs[32][512];
static int ndirs, go[2];
static const char *rootfs;

/* A new cpuset cgroup has no cpus or mems: copy the parent's, as every runtime does. */
static int copy_cpuset(const char *parent, const char *dir) {
	static const char *files[] = {"cpuset.cpus", "cpuset.mems"};
	char path[600], buf[256];
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof path, "%s/%s", parent, files[i]);
		int fd = open(path, O_RDONLY), n = fd < 0 ? -1 : read(fd, buf, sizeof buf);
		close(fd);
		snprintf(path, sizeof path, "%s/%s", dir, files[i]);
		if (n <= 0 || (fd = open(path, O_WRONLY)) < 0 || write(fd, buf, n) != n)
			return perror(path), -1;
		close(fd);
	}
	return 0;
}

static int child(void *arg) {
	char c;
	(void)arg;
	close(go[1]);
	if (read(go[0], &c, 1) != 1) /* the parent has put us in the cgroups */
		return 111;
	if (chroot(rootfs) || chdir("/"))
		return perror("chroot"), 112;
	execl("/bin/true", "true", (char *)NULL);
	return perror("exec /bin/true"), 113;
}

int main(int argc, char **argv) {
	static char stack[64 * 1024];
	char path[600], pid[16];
	struct mntent *m;
	int status, i, fd, len;
	if (argc != 3)
		return fprintf(stderr, "usage: floor ROOTFS NAME\n"), 2;
	rootfs = argv[1];
	FILE *mounts = setmntent("/proc/self/mounts", "r");
	while (mounts && (m = getmntent(mounts)) && ndirs < 32) {
		if (strcmp(m->mnt_type, "cgroup") && strcmp(m->mnt_type, "cgroup2"))
			continue;
		snprintf(dirs[ndirs], sizeof dirs[0], "%s/%s", m->mnt_dir, argv[2]);
		if (mkdir(dirs[ndirs], 0755))
			return perror(dirs[ndirs]), 1;
		if (hasmntopt(m, "cpuset") && copy_cpuset(m->mnt_dir, dirs[ndirs]))
			return 1;
		ndirs++;
	}
	if (pipe(go))
		return perror("pipe"), 1;
	int flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWPID |
		    CLONE_NEWCGROUP | SIGCHLD;
	pid_t p = clone(child, stack + sizeof stack, flags, NULL);
	if (p < 0)
		return perror("clone"), 1;
	len = snprintf(pid, sizeof pid, "%d", p);
	for (i = 0; i < ndirs; i++) {
		snprintf(path, sizeof path, "%s/cgroup.procs", dirs[i]);
		if ((fd = open(path, O_WRONLY)) < 0 || write(fd, pid, len) != len)
			return perror(path), 1;
		close(fd);
	}
	if (write(go[1], "x", 1) != 1 || waitpid(p, &status, 0) != p)
		return perror("child"), 1;
	for (i = 0; i < ndirs; i++)
		if (rmdir(dirs[i]))
			return perror(dirs[i]), 1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

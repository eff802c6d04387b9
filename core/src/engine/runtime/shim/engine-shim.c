/*
 * engine-shim: the per-container (or per-exec) monitor of the engine daemon.
 *
 * One shim runs per container process. It is not a child of the daemon (fork + setsid),
 * it is a child subreaper so the container's init (or the exec'd process) becomes its child
 * once the OCI runtime exits, and it owns the container's stdio:
 *
 *   - it runs `<runtime> create` + `<runtime> start` (or `run -d`, or `exec -d`), reports
 *     readiness or failure over a sync pipe the daemon passed (fd given with -y);
 *   - it reads stdout/stderr (or the pty master) continuously and appends framed records to a
 *     spool directory of segment files, so the container never blocks on the daemon;
 *   - it serves a unix control socket (shim.sock): stdin data, stdin close, pty resize, signal,
 *     state and wait;
 *   - when the process exits it drains the output, writes an END record, writes exit.json
 *     atomically (exit code or 128+signal, finish time, OOM flag from memory.oom_control),
 *     answers waiters and exits.
 *
 * Spool record (little endian): u32 length, u8 stream (1 stdout, 2 stderr, 0 END), u8 flags,
 * u16 reserved, u64 realtime ns, then `length` bytes. Segment files are named by the logical
 * offset of their first byte, "%016llx.seg"; a new one starts when the current one passes the
 * size limit, so the daemon can delete consumed segments.
 *
 * Control frames (client -> shim): u8 op, u32 length (LE), payload.
 *   'I' stdin bytes   'C' close stdin   'R' resize (u16 rows, u16 cols)
 *   'K' signal (u32 signo)   'S' state   'W' wait (answered once the process exited)
 * Replies are single text lines: "running <pid>", "ok", "err <errno>", or exit.json's JSON.
 *
 * Kept deliberately small: no allocation in the steady state, static buffers, poll(2).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS 64
#define MAX_RT_ARGS 32
#define IOBUF 65536
#define STDIN_BUF 65536
#define DRAIN_MS 2000

enum { ST_END = 0, ST_STDOUT = 1, ST_STDERR = 2 };

static struct {
	const char *id, *bundle, *state_dir, *spool_dir, *runtime, *process_json, *oom_file;
	const char *rt_args[MAX_RT_ARGS];
	int n_rt_args;
	int tty, stdin_open, exec_mode, use_run, sync_fd;
	long long seg_limit;
} o = {.sync_fd = -1, .seg_limit = 1 << 20};

/* spool writer */
static int seg_fd = -1;
static unsigned long long seg_start, seg_size;
static int spool_broken;

/* container process */
static pid_t init_pid = -1;
static int exited, exit_code, exit_signal;
static long long finished_ns;

/* stdio */
static int out_fd = -1, err_fd = -1, in_fd = -1; /* in_fd: write side of stdin (or the pty master) */
static int stdin_closing, stdin_closed;
static char stdin_buf[STDIN_BUF];
static size_t stdin_len;

/* control clients */
struct client {
	int fd;
	int waiting;              /* sent 'W' */
	unsigned char hdr[5];
	int hdr_len;
	unsigned char op;
	uint32_t remaining;       /* payload bytes still to read */
	unsigned char small[16];  /* payload of non-stdin ops */
	uint32_t small_len;
};
static struct client clients[MAX_CLIENTS];
static int listen_fd = -1;

static char iobuf[IOBUF];

static void logmsg(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "engine-shim[%d] %s: ", getpid(), o.id ? o.id : "?");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void set_cloexec(int fd) { fcntl(fd, F_SETFD, FD_CLOEXEC); }

static void set_nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* ---- spool ------------------------------------------------------------------------------- */

static int open_segment(unsigned long long start)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%016llx.seg", o.spool_dir, start);
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0) {
		logmsg("open %s: %s", path, strerror(errno));
		return -1;
	}
	if (seg_fd >= 0)
		close(seg_fd);
	seg_fd = fd;
	seg_start = start;
	seg_size = (unsigned long long)lseek(fd, 0, SEEK_END);
	return 0;
}

static void spool_record(int stream, const char *data, uint32_t len)
{
	if (spool_broken)
		return;
	if (seg_size > 0 && seg_size + 16 + len > (unsigned long long)o.seg_limit)
		if (open_segment(seg_start + seg_size) < 0) {
			spool_broken = 1;
			return;
		}
	unsigned char hdr[16] = {0};
	long long ts = now_ns();
	memcpy(hdr, &len, 4); /* x86/arm little endian hosts only; the format says LE */
	hdr[4] = (unsigned char)stream;
	memcpy(hdr + 8, &ts, 8);
	struct iovec iov[2] = {{hdr, 16}, {(void *)data, len}};
	size_t total = 16 + len, done = 0;
	while (done < total) {
		ssize_t n = writev(seg_fd, iov, 2);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			logmsg("spool write: %s (output dropped from now on)", strerror(errno));
			spool_broken = 1;
			return;
		}
		done += (size_t)n;
		/* advance the iovecs past what was written (short writes: ENOSPC edge) */
		size_t k = (size_t)n;
		for (int i = 0; i < 2; i++) {
			size_t take = k < iov[i].iov_len ? k : iov[i].iov_len;
			iov[i].iov_base = (char *)iov[i].iov_base + take;
			iov[i].iov_len -= take;
			k -= take;
		}
	}
	seg_size += total;
}

/* ---- process status ---------------------------------------------------------------------- */

static long long read_oom_kills(void)
{
	if (!o.oom_file)
		return 0;
	int fd = open(o.oom_file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	char buf[512];
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	char *p = strstr(buf, "oom_kill ");
	return p ? atoll(p + 9) : 0;
}

static void reap(void)
{
	for (;;) {
		int st;
		pid_t p = waitpid(-1, &st, WNOHANG);
		if (p <= 0)
			return;
		if (p == init_pid && !exited) {
			exited = 1;
			finished_ns = now_ns();
			if (WIFEXITED(st)) {
				exit_code = WEXITSTATUS(st);
			} else if (WIFSIGNALED(st)) {
				exit_signal = WTERMSIG(st);
				exit_code = 128 + exit_signal;
			}
		}
	}
}

static int exit_json(char *buf, size_t size, long long oom_kills)
{
	return snprintf(buf, size,
			"{\"exit_code\":%d,\"signal\":%d,\"oom_killed\":%s,\"finished_at\":%lld,\"pid\":%d}\n",
			exit_code, exit_signal, oom_kills > 0 ? "true" : "false", finished_ns, (int)init_pid);
}

static void write_exit_file(const char *json, int len)
{
	char tmp[4096], dst[4096];
	snprintf(tmp, sizeof tmp, "%s/.exit.json.tmp", o.state_dir);
	snprintf(dst, sizeof dst, "%s/exit.json", o.state_dir);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		logmsg("open %s: %s", tmp, strerror(errno));
		return;
	}
	/* no fsync: the file only has to outlive the daemon, not the host (a reboot ends the
	 * container too), and an fsync here costs up to 20 ms on the exit path of every container */
	if (write_all(fd, json, (size_t)len) < 0)
		logmsg("write %s: %s", tmp, strerror(errno));
	close(fd);
	if (rename(tmp, dst) < 0)
		logmsg("rename %s: %s", dst, strerror(errno));
}

/* ---- runtime invocations ----------------------------------------------------------------- */

static pid_t spawn(const char *const *argv, int in, int out, int err)
{
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	sigset_t all;
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	signal(SIGPIPE, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
		_exit(125);
	closefrom(3);
	execvp(argv[0], (char *const *)argv);
	_exit(127);
}

/* run `runtime <global args> <args...>` with the given stdio; returns the wait status */
static int run_runtime(const char *const *args, int in, int out, int err)
{
	const char *argv[MAX_RT_ARGS + 16];
	int n = 0;
	argv[n++] = o.runtime;
	for (int i = 0; i < o.n_rt_args; i++)
		argv[n++] = o.rt_args[i];
	for (int i = 0; args[i] && n < MAX_RT_ARGS + 15; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	pid_t pid = spawn(argv, in, out, err);
	if (pid < 0)
		return -1;
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return st;
}

static int read_pid_file(const char *path)
{
	char buf[32];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	return atoi(buf);
}

static void report(const char *fmt, ...)
{
	if (o.sync_fd < 0)
		return;
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	write_all(o.sync_fd, buf, (size_t)n);
	close(o.sync_fd);
	o.sync_fd = -1;
}

static int recv_fd(int sock)
{
	char dummy[64];
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {dummy, sizeof dummy};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
	if (recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) < 0)
		return -1;
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	if (!c || c->cmsg_type != SCM_RIGHTS)
		return -1;
	int fd;
	memcpy(&fd, CMSG_DATA(c), sizeof fd);
	return fd;
}

static int listen_unix(const char *name)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (fd < 0 || strlen(name) >= sizeof sa.sun_path)
		return -1;
	strcpy(sa.sun_path, name);
	unlink(name);
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 128) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Start the container (or exec). Returns 0 with init_pid set, or -1 after reporting. */
static int start_process(void)
{
	int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	int in_r = devnull, out_w = devnull, err_w = devnull;
	int console = -1;
	int p[2];
	char pid_file[4096];
	snprintf(pid_file, sizeof pid_file, "%s/init.pid", o.state_dir);
	unlink(pid_file);

	if (o.tty) {
		/* relative: the socket path limit is 108 bytes; runc runs with cwd = our state dir
		 * (exec) or chdirs to the bundle, which is the state dir (create/run) */
		console = listen_unix("console.sock");
		if (console < 0) {
			report("err -1 console socket: %s\n", strerror(errno));
			return -1;
		}
	} else {
		if (pipe2(p, O_CLOEXEC) < 0)
			goto pipe_err;
		out_fd = p[0], out_w = p[1];
		if (pipe2(p, O_CLOEXEC) < 0)
			goto pipe_err;
		err_fd = p[0], err_w = p[1];
		if (o.stdin_open) {
			if (pipe2(p, O_CLOEXEC) < 0)
				goto pipe_err;
			in_r = p[0], in_fd = p[1];
		}
	}

	const char *args[16];
	int n = 0;
	if (o.exec_mode) {
		args[n++] = "exec";
		args[n++] = "--process";
		args[n++] = o.process_json;
		args[n++] = "-d";
	} else {
		args[n++] = o.use_run ? "run" : "create";
		if (o.use_run)
			args[n++] = "-d";
		args[n++] = "--bundle";
		args[n++] = o.bundle;
	}
	args[n++] = "--pid-file";
	args[n++] = pid_file;
	if (o.tty) {
		args[n++] = "--console-socket";
		args[n++] = "console.sock";
	}
	args[n++] = o.id;
	args[n] = NULL;

	int st = run_runtime(args, in_r, out_w, err_w);
	if (in_r != devnull)
		close(in_r);
	if (out_w != devnull)
		close(out_w);
	if (err_w != devnull)
		close(err_w);
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		report("err %d\n", st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
		unlink("console.sock");
		return -1;
	}
	if (o.tty) {
		set_nonblock(console);
		int c = accept4(console, NULL, NULL, SOCK_CLOEXEC);
		int master = c >= 0 ? recv_fd(c) : -1;
		if (c >= 0)
			close(c);
		close(console);
		unlink("console.sock");
		if (master < 0) {
			report("err -1 no console received\n");
			return -1;
		}
		out_fd = in_fd = master;
	}
	init_pid = read_pid_file(pid_file);
	if (init_pid <= 0) {
		report("err -1 no pid file\n");
		return -1;
	}
	if (!o.exec_mode && !o.use_run) {
		const char *start_args[] = {"start", o.id, NULL};
		st = run_runtime(start_args, devnull, devnull, devnull);
		if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			report("err %d start\n", st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
			return -1;
		}
	}
	close(devnull);
	if (out_fd >= 0)
		set_nonblock(out_fd);
	if (err_fd >= 0)
		set_nonblock(err_fd);
	if (in_fd >= 0 && in_fd != out_fd)
		set_nonblock(in_fd);
	report("ok %d\n", (int)init_pid);
	return 0;

pipe_err:
	report("err -1 pipe: %s\n", strerror(errno));
	return -1;
}

/* ---- control socket ---------------------------------------------------------------------- */

static void client_close(struct client *c)
{
	close(c->fd);
	c->fd = -1;
}

static void reply(struct client *c, const char *line)
{
	/* replies are tiny; a client that does not read them loses them */
	if (send(c->fd, line, strlen(line), MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		client_close(c);
}

static void close_stdin_now(void)
{
	if (in_fd >= 0 && in_fd != out_fd)
		close(in_fd);
	in_fd = -1;
	stdin_closed = 1;
	stdin_len = 0;
}

static void handle_op(struct client *c)
{
	char line[128];
	switch (c->op) {
	case 'I':
		break; /* payload already queued as it arrived */
	case 'C':
		if (o.tty) {
			stdin_closed = 1; /* a terminal has no half-close: just stop forwarding */
		} else if (stdin_len) {
			stdin_closing = 1;
		} else {
			close_stdin_now();
		}
		break;
	case 'R':
		if (o.tty && out_fd >= 0 && c->small_len >= 4) {
			struct winsize ws = {0};
			uint16_t rows, cols;
			memcpy(&rows, c->small, 2);
			memcpy(&cols, c->small + 2, 2);
			ws.ws_row = rows, ws.ws_col = cols;
			ioctl(out_fd, TIOCSWINSZ, &ws);
		}
		break;
	case 'K': {
		uint32_t sig = 0;
		if (c->small_len >= 4)
			memcpy(&sig, c->small, 4);
		/* we are the parent and have not reaped it yet, so the pid cannot have been reused */
		if (exited)
			reply(c, "err 3\n");
		else if (kill(init_pid, (int)sig) < 0)
			snprintf(line, sizeof line, "err %d\n", errno), reply(c, line);
		else
			reply(c, "ok\n");
		break;
	}
	case 'S':
		if (exited)
			snprintf(line, sizeof line, "exited %d\n", exit_code);
		else
			snprintf(line, sizeof line, "running %d\n", (int)init_pid);
		reply(c, line);
		break;
	case 'W':
		c->waiting = 1;
		break;
	default:
		client_close(c);
	}
}

static void client_read(struct client *c)
{
	for (;;) {
		if (c->remaining == 0 && c->hdr_len < 5) {
			ssize_t n = recv(c->fd, c->hdr + c->hdr_len, (size_t)(5 - c->hdr_len), MSG_DONTWAIT);
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
				client_close(c);
				return;
			}
			if (n < 0)
				return;
			c->hdr_len += (int)n;
			if (c->hdr_len < 5)
				continue;
			c->op = c->hdr[0];
			memcpy(&c->remaining, c->hdr + 1, 4);
			c->small_len = 0;
			if (c->op != 'I' && c->remaining > sizeof c->small) {
				client_close(c);
				return;
			}
			if (c->remaining == 0) {
				c->hdr_len = 0;
				handle_op(c);
				if (c->fd < 0)
					return;
			}
			continue;
		}
		/* payload */
		if (c->op == 'I') {
			size_t room = STDIN_BUF - stdin_len;
			if (room == 0)
				return; /* backpressure: poll() stops asking for this client's input */
			size_t want = c->remaining < room ? c->remaining : room;
			ssize_t n = recv(c->fd, stdin_buf + stdin_len, want, MSG_DONTWAIT);
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
				client_close(c);
				return;
			}
			if (n < 0)
				return;
			/* stdin goes nowhere once closed (or never opened): drop it */
			if (in_fd >= 0 && !stdin_closed && !stdin_closing)
				stdin_len += (size_t)n;
			c->remaining -= (uint32_t)n;
		} else {
			ssize_t n = recv(c->fd, c->small + c->small_len, c->remaining, MSG_DONTWAIT);
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
				client_close(c);
				return;
			}
			if (n < 0)
				return;
			c->small_len += (uint32_t)n;
			c->remaining -= (uint32_t)n;
		}
		if (c->remaining == 0) {
			c->hdr_len = 0;
			handle_op(c);
			if (c->fd < 0)
				return;
		}
	}
}

static void flush_stdin(void)
{
	while (stdin_len && in_fd >= 0) {
		ssize_t n = write(in_fd, stdin_buf, stdin_len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return;
			/* EPIPE: the reader is gone; further stdin is dropped */
			close_stdin_now();
			return;
		}
		memmove(stdin_buf, stdin_buf + n, stdin_len - (size_t)n);
		stdin_len -= (size_t)n;
	}
	if (!stdin_len && stdin_closing) {
		stdin_closing = 0;
		close_stdin_now();
	}
}

/* ---- output ------------------------------------------------------------------------------ */

/* read what is there; returns 0 on EOF (or pty EIO), 1 otherwise */
static int pump(int fd, int stream)
{
	for (int i = 0; i < 16; i++) {
		ssize_t n = read(fd, iobuf, sizeof iobuf);
		if (n > 0) {
			spool_record(stream, iobuf, (uint32_t)n);
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return 1;
		return 0;
	}
	return 1;
}

/* ---- main -------------------------------------------------------------------------------- */

static void usage(void)
{
	fputs("usage: engine-shim -i ID -d STATE_DIR -o SPOOL_DIR -r RUNTIME [-R arg]... "
	      "(-b BUNDLE | -x -p PROCESS_JSON) [-t] [-s] [-u] [-y SYNC_FD] [-O OOM_FILE] [-L SEGMENT_BYTES]\n",
	      stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	int opt;
	while ((opt = getopt(argc, argv, "i:b:d:o:r:R:p:O:y:L:tsxu")) != -1) {
		switch (opt) {
		case 'i': o.id = optarg; break;
		case 'b': o.bundle = optarg; break;
		case 'd': o.state_dir = optarg; break;
		case 'o': o.spool_dir = optarg; break;
		case 'r': o.runtime = optarg; break;
		case 'R':
			if (o.n_rt_args < MAX_RT_ARGS)
				o.rt_args[o.n_rt_args++] = optarg;
			break;
		case 'p': o.process_json = optarg; break;
		case 'O': o.oom_file = optarg; break;
		case 'y': o.sync_fd = atoi(optarg); break;
		case 'L': o.seg_limit = atoll(optarg); break;
		case 't': o.tty = 1; break;
		case 's': o.stdin_open = 1; break;
		case 'x': o.exec_mode = 1; break;
		case 'u': o.use_run = 1; break;
		default: usage();
		}
	}
	if (!o.id || !o.state_dir || !o.spool_dir || !o.runtime || (o.exec_mode ? !o.process_json : !o.bundle))
		usage();
	if (o.sync_fd >= 0)
		set_cloexec(o.sync_fd);

	/* leave the daemon: the parent returns at once, the child starts a session of its own */
	pid_t pid = fork();
	if (pid < 0) {
		report("err -1 fork: %s\n", strerror(errno));
		return 1;
	}
	if (pid > 0)
		_exit(0);
	setsid();
	if (chdir(o.state_dir) < 0) {
		report("err -1 chdir %s: %s\n", o.state_dir, strerror(errno));
		return 1;
	}
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	/* a stray SIGTERM (e.g. a host shutdown's first round) must not orphan the container's stdio;
	 * the daemon ends shims only by SIGKILL, after their container */
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

	for (int i = 0; i < MAX_CLIENTS; i++)
		clients[i].fd = -1;
	listen_fd = listen_unix("shim.sock");
	if (listen_fd < 0) {
		report("err -1 control socket: %s\n", strerror(errno));
		return 1;
	}
	set_nonblock(listen_fd);
	if (open_segment(0) < 0) {
		report("err -1 spool %s: %s\n", o.spool_dir, strerror(errno));
		unlink("shim.sock");
		return 1;
	}
	{
		char pidbuf[32];
		int n = snprintf(pidbuf, sizeof pidbuf, "%d\n", getpid());
		int fd = open("shim.pid", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd >= 0) {
			write_all(fd, pidbuf, (size_t)n);
			close(fd);
		}
	}
	if (start_process() < 0) {
		unlink("shim.sock");
		unlink("shim.pid");
		return 1;
	}
	long long oom_start = read_oom_kills();

	long long drain_deadline = -1;
	for (;;) {
		struct pollfd pfd[MAX_CLIENTS + 6];
		int idx_client[MAX_CLIENTS + 6];
		int n = 0;
		int i_out = -1, i_err = -1, i_in = -1, i_sig, i_listen;
		reap();
		if (exited && drain_deadline < 0)
			drain_deadline = mono_ms() + DRAIN_MS;
		if (exited && out_fd < 0 && err_fd < 0)
			break;
		if (drain_deadline >= 0 && mono_ms() >= drain_deadline)
			break;
		if (out_fd >= 0) {
			i_out = n;
			pfd[n++] = (struct pollfd){out_fd, POLLIN, 0};
		}
		if (err_fd >= 0) {
			i_err = n;
			pfd[n++] = (struct pollfd){err_fd, POLLIN, 0};
		}
		if (in_fd >= 0 && stdin_len) {
			if (in_fd == out_fd) {
				pfd[i_out].events |= POLLOUT;
			} else {
				i_in = n;
				pfd[n++] = (struct pollfd){in_fd, POLLOUT, 0};
			}
		}
		i_sig = n;
		pfd[n++] = (struct pollfd){sfd, POLLIN, 0};
		i_listen = n;
		pfd[n++] = (struct pollfd){listen_fd, POLLIN, 0};
		for (int i = 0; i < MAX_CLIENTS; i++) {
			struct client *c = &clients[i];
			if (c->fd < 0)
				continue;
			/* backpressure: a client in the middle of stdin data waits while the buffer is full
			 * (left out of poll entirely, so its hang-up cannot spin us); the others are served */
			if (stdin_len >= STDIN_BUF && c->op == 'I' && c->remaining > 0)
				continue;
			idx_client[n] = i;
			pfd[n++] = (struct pollfd){c->fd, POLLIN, 0};
		}
		int timeout = -1;
		if (drain_deadline >= 0) {
			long long left = drain_deadline - mono_ms();
			timeout = left < 0 ? 0 : (int)left;
		}
		if (poll(pfd, (nfds_t)n, timeout) < 0) {
			if (errno == EINTR)
				continue;
			logmsg("poll: %s", strerror(errno));
			break;
		}
		if (i_out >= 0 && (pfd[i_out].revents & (POLLIN | POLLHUP | POLLERR))) {
			if (!pump(out_fd, ST_STDOUT)) {
				if (in_fd == out_fd)
					in_fd = -1;
				close(out_fd);
				out_fd = -1;
			}
		}
		if (i_err >= 0 && (pfd[i_err].revents & (POLLIN | POLLHUP | POLLERR))) {
			if (!pump(err_fd, ST_STDERR)) {
				close(err_fd);
				err_fd = -1;
			}
		}
		if ((i_in >= 0 && pfd[i_in].revents) || (i_out >= 0 && out_fd >= 0 && (pfd[i_out].revents & POLLOUT)))
			flush_stdin();
		if (pfd[i_sig].revents & POLLIN) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof si) > 0)
				;
		}
		if (pfd[i_listen].revents & POLLIN) {
			for (;;) {
				int c = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
				if (c < 0)
					break;
				int slot = -1;
				for (int i = 0; i < MAX_CLIENTS; i++)
					if (clients[i].fd < 0) {
						slot = i;
						break;
					}
				if (slot < 0) {
					close(c);
					continue;
				}
				memset(&clients[slot], 0, sizeof clients[slot]);
				clients[slot].fd = c;
			}
		}
		for (int k = i_listen + 1; k < n; k++) {
			struct client *c = &clients[idx_client[k]];
			if (c->fd < 0 || !pfd[k].revents)
				continue;
			if (pfd[k].revents & (POLLIN | POLLHUP | POLLERR))
				client_read(c);
		}
		if (stdin_len)
			flush_stdin();
	}

	/* the process is gone and its output drained: END record, exit file, answer waiters */
	reap();
	spool_record(ST_END, "", 0);
	if (seg_fd >= 0)
		close(seg_fd);
	char json[256];
	int len = exit_json(json, sizeof json, read_oom_kills() - oom_start);
	write_exit_file(json, len);
	for (int i = 0; i < MAX_CLIENTS; i++) {
		if (clients[i].fd < 0)
			continue;
		if (clients[i].waiting)
			reply(&clients[i], json);
		if (clients[i].fd >= 0)
			client_close(&clients[i]);
	}
	unlink("shim.sock");
	unlink("shim.pid");
	return 0;
}

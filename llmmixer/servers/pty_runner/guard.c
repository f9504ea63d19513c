/* llmmixer guard: bind-mounted inside the sandbox over every binary a policy rule names.
 *
 * The file is exec-only (mode 0111): nothing in the sandbox can read, copy or trace it, and the kernel makes a
 * process started from an unreadable file non-dumpable, so no other process of the sandbox can open its
 * /proc/<pid>/mem, /proc/<pid>/exe or /proc/<pid>/fd. Its orders (refuse or ask, the program, the rule) stay on the
 * host: the runner knows each guard file by its inode, and tells this process's from the peer of the control
 * socket (SO_PEERCRED, then /proc/<pid>/exe). A client of the socket that is not a guard is refused.
 *
 * It sends argv, cwd and the environment to the runner over the sandbox's control socket (/dev/llmmixer/control).
 * On "allow" the runner answers with a descriptor of an exec-only copy of the real program (never reachable by any
 * path inside the sandbox), which is executed in place, with the loader's variables (LD_PRELOAD and friends)
 * removed: the approved process is non-dumpable too, so what it starts cannot re-execute it through
 * /proc/<pid>/exe with other arguments. On "deny" it prints the runner's message and exits 126.
 *
 * It is static, reads no environment variable, runs no shell and loads no library, so nothing the sandboxed
 * command controls changes what it does.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#define SOCKET_PATH "/dev/llmmixer/control"

extern char **environ;

static int connect_runner(void) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strncpy(addr.sun_path, SOCKET_PATH, sizeof(addr.sun_path) - 1);
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *data, size_t size) {
    while (size) {
        ssize_t n = send(fd, data, size, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        data += n;
        size -= (size_t)n;
    }
    return 0;
}

/* A request: 4-byte length (little endian), then NUL-terminated fields. */
static char *request;
static size_t request_size, request_room;

static void field(const char *text) {
    size_t n = strlen(text) + 1;
    if (request_size + n > request_room) {
        request_room = (request_size + n) * 2 + 4096;
        request = realloc(request, request_room);
        if (!request) _exit(125);
    }
    memcpy(request + request_size, text, n);
    request_size += n;
}

static int send_request(int fd) {
    uint32_t size = (uint32_t)request_size;
    unsigned char head[4] = {size & 255, (size >> 8) & 255, (size >> 16) & 255, (size >> 24) & 255};
    return send_all(fd, (const char *)head, 4) || send_all(fd, request, request_size);
}

static void begin(int argc, char **argv) {
    char number[32], cwd[8192], exe[8192];
    field("exec"); /* kind, program and rule: the runner knows them from this file's inode */
    field("");
    field("");
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    exe[n > 0 ? n : 0] = 0;
    field(exe);
    field(getcwd(cwd, sizeof(cwd)) ? cwd : "");
    snprintf(number, sizeof(number), "%d", argc);
    field(number);
    for (int i = 0; i < argc; i++) field(argv[i]);
}

/* Variables the dynamic loader and libc act on before main (glibc's list for secure execution). */
static const char *const LOADER_VARS[] = {"LD_", "GCONV_PATH=", "GETCONF_DIR=", "GLIBC_TUNABLES=", "HOSTALIASES=",
                                          "LOCALDOMAIN=", "LOCPATH=", "MALLOC_", "NIS_PATH=", "NLSPATH=",
                                          "RESOLV_HOST_CONF=", "RES_OPTIONS=", "TZDIR=", NULL};

static char **without_loader_vars(void) {
    size_t n = 0;
    for (char **e = environ; *e; e++) n++;
    char **out = calloc(n + 1, sizeof(char *));
    if (!out) _exit(125);
    size_t k = 0;
    for (char **e = environ; *e; e++) {
        int drop = 0;
        for (const char *const *v = LOADER_VARS; *v && !drop; v++) drop = strncmp(*e, *v, strlen(*v)) == 0;
        if (!drop) out[k++] = *e;
    }
    out[k] = NULL;
    return out;
}

static int ask(int argc, char **argv) {
    const char *name = argc > 0 ? argv[0] : "?";
    int fd = connect_runner();
    if (fd < 0) {
        dprintf(2, "llmmixer: %s refused: the runner that decides its policy rule cannot be reached\n", name);
        return 126;
    }
    begin(argc, argv);
    for (char **e = environ; *e; e++) field(*e);
    if (send_request(fd)) {
        dprintf(2, "llmmixer: %s refused: the runner did not take the request\n", name);
        return 126;
    }
    char answer[4096];
    struct iovec io = {.iov_base = answer, .iov_len = sizeof(answer) - 1};
    union { struct cmsghdr align; char data[CMSG_SPACE(sizeof(int))]; } control;
    struct msghdr msg = {.msg_iov = &io, .msg_iovlen = 1, .msg_control = control.data,
                         .msg_controllen = sizeof(control.data)};
    ssize_t got;
    do got = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC); while (got < 0 && errno == EINTR);
    close(fd);
    int real = -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) memcpy(&real, CMSG_DATA(c), sizeof(int));
    answer[got > 0 ? got : 0] = 0;
    if (got <= 0 || answer[0] != 'A' || real < 0) {
        dprintf(2, "%s\n", got > 1 ? answer + 1 : "llmmixer: refused: no answer from the runner");
        return 126;
    }
    char **env = without_loader_vars();
    syscall(SYS_execveat, real, "", argv, env, AT_EMPTY_PATH);
    if (errno == ENOENT) { /* a script: its interpreter reopens it through /dev/fd, which must stay open */
        fcntl(real, F_SETFD, 0);
        syscall(SYS_execveat, real, "", argv, env, AT_EMPTY_PATH);
    }
    dprintf(2, "llmmixer: %s: cannot execute: %s\n", name, strerror(errno));
    return 126;
}

int main(int argc, char **argv) {
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0); /* already so (an exec-only file); also for a guard someone made readable */
    return ask(argc, argv);
}

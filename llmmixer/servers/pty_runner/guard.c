/* llmmixer guard: bind-mounted inside the sandbox over every binary a policy rule names.
 *
 * Its orders are a trailer appended to the binary itself ("\nLLMMIXER-GUARD\t<mode>\t<program>\t<rule>\n"), read
 * through /proc/self/exe, so a copy (cp /bin/rm zz) or a link (ln -s /bin/rm r) still knows what it stands for.
 *
 *   refuse  print "llmmixer: <program> refused by policy rule <rule>", tell the runner, exit 126.
 *   ask     send argv, cwd and environment to the runner over the sandbox's control socket; on "allow" the runner
 *           answers with a descriptor of the real program (never reachable by any path inside the sandbox), which
 *           is executed in place; on "deny" print the runner's message and exit 126.
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
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#define SOCKET_PATH "/dev/llmmixer/control"
#define MARKER "\nLLMMIXER-GUARD\t"
#define TRAILER_MAX 4096

extern char **environ;

static char trailer[TRAILER_MAX + 1];
static char *mode = "refuse", *program = "?", *rule = "?";

static void read_orders(void) {
    int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    off_t size = lseek(fd, 0, SEEK_END);
    off_t from = size > TRAILER_MAX ? size - TRAILER_MAX : 0;
    ssize_t got = pread(fd, trailer, (size_t)(size - from), from);
    close(fd);
    if (got <= 0) return;
    trailer[got] = 0;
    char *found = NULL, *at = trailer;
    for (;;) { /* the last marker: memmem over the tail, which may hold NUL bytes of the ELF */
        char *next = memmem(at, (size_t)(trailer + got - at), MARKER, sizeof(MARKER) - 1);
        if (!next) break;
        found = next;
        at = next + 1;
    }
    if (!found) return;
    char *fields = found + sizeof(MARKER) - 1;
    char *end = strchr(fields, '\n');
    if (end) *end = 0;
    char *tab1 = strchr(fields, '\t');
    if (!tab1) return;
    *tab1 = 0;
    char *tab2 = strchr(tab1 + 1, '\t');
    if (!tab2) return;
    *tab2 = 0;
    mode = fields;
    program = tab1 + 1;
    rule = tab2 + 1;
}

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

static void begin(const char *kind, int argc, char **argv) {
    char number[32], cwd[8192], exe[8192];
    field(kind);
    field(program);
    field(rule);
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    exe[n > 0 ? n : 0] = 0;
    field(exe);
    field(getcwd(cwd, sizeof(cwd)) ? cwd : "");
    snprintf(number, sizeof(number), "%d", argc);
    field(number);
    for (int i = 0; i < argc; i++) field(argv[i]);
}

static int refuse(int argc, char **argv) {
    dprintf(2, "llmmixer: %s refused by policy rule %s\n", program, rule);
    int fd = connect_runner();
    if (fd >= 0) {
        begin("refused", argc, argv);
        send_request(fd);
        close(fd);
    }
    return 126;
}

static int ask(int argc, char **argv) {
    int fd = connect_runner();
    if (fd < 0) {
        dprintf(2, "llmmixer: %s refused: the runner that decides policy rule %s cannot be reached\n", program,
                rule);
        return 126;
    }
    begin("ask", argc, argv);
    for (char **e = environ; *e; e++) field(*e);
    if (send_request(fd)) {
        dprintf(2, "llmmixer: %s refused: the runner did not take the request\n", program);
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
    syscall(SYS_execveat, real, "", argv, environ, AT_EMPTY_PATH);
    if (errno == ENOENT) { /* a script: its interpreter reopens it through /dev/fd, which must stay open */
        fcntl(real, F_SETFD, 0);
        syscall(SYS_execveat, real, "", argv, environ, AT_EMPTY_PATH);
    }
    dprintf(2, "llmmixer: %s: cannot execute: %s\n", program, strerror(errno));
    return 126;
}

int main(int argc, char **argv) {
    read_orders();
    if (strcmp(mode, "ask") == 0) return ask(argc, argv);
    return refuse(argc, argv);
}

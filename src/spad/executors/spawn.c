/*
 * spad_spawn: start one task, with SIGKILL as its parent-death signal, in one exec.
 *
 * Linux lets only the child set its parent-death signal, between fork and exec. Python can do
 * that only with preexec_fn, which forces a full fork of the runner (1.7-2.0 ms a task on 2
 * cores), and a helper program that sets it and execs again pays a second exec (0.35-0.45 ms).
 * This is what glibc's posix_spawn does (vfork, then a few system calls in the child), with the
 * prctl added: the cost of a bare posix_spawn. The runner loads it with ctypes; the package's
 * build (setup.py) makes it when a C compiler is there, and without it the runner falls back to
 * preexec_fn.
 *
 * In the child, until exec: every signal goes back to its default, whether the runner handles
 * it or ignores it (Python ignores SIGPIPE and SIGXFSZ; a spad started from the background of a
 * script inherits SIGINT and SIGQUIT ignored), and the signal mask is emptied, so a task starts
 * as systemd or supervisord would start it, however spad was started. Only async-signal-safe
 * calls: the child shares the runner's memory.
 *
 * Returns the pid, or -1 with errno set when the child could not be made. When the folder cannot
 * be entered or the program not run, the child writes why to the task's output and exits 127
 * (no such file) or 126 (any other reason), as a shell would.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

static void say(const char *what, const char *name, int error) {
    const char *reason = strerror(error);
    const char *parts[] = {"spad: cannot ", what, " ", name, ": ", reason, "\n"};
    for (unsigned i = 0; i < sizeof parts / sizeof *parts; i++) {
        if (write(2, parts[i], strlen(parts[i])) < 0) {
            return;
        }
    }
}

static int onto(int fd, int target) {
    if (fd == target) { /* already there: it only has to survive exec */
        int flags = fcntl(fd, F_GETFD);
        return flags < 0 ? -1 : fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);
    }
    return dup2(fd, target) < 0 ? -1 : 0;
}

static _Noreturn void child(const char *path, char *const argv[], char *const envp[],
                            const char *cwd, int input, int output, pid_t parent,
                            const sigset_t *empty) {
    struct sigaction action;
    for (int signum = 1; signum < NSIG; signum++) {
        if (signum == SIGKILL || signum == SIGSTOP || sigaction(signum, NULL, &action) != 0) {
            continue;
        }
        if (action.sa_handler != SIG_DFL) {
            action.sa_handler = SIG_DFL;
            action.sa_flags = 0;
            sigaction(signum, &action, NULL);
        }
    }
    sigprocmask(SIG_SETMASK, empty, NULL);
    if (parent > 0) {
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) {
            _exit(1); /* the runner died before the signal was set: follow it */
        }
    }
    if (setpgid(0, 0) != 0 || onto(input, 0) != 0 || onto(output, 1) != 0 ||
        onto(output, 2) != 0) {
        _exit(126);
    }
    if (chdir(cwd) != 0) {
        int error = errno;
        say("enter", cwd, error);
        _exit(error == ENOENT ? 127 : 126);
    }
    execve(path, argv, envp);
    int error = errno;
    say("start", path, error);
    _exit(error == ENOENT ? 127 : 126);
}

/* parent > 0: the child checks it is still that process's child once the signal is set;
 * parent == 0: no parent-death signal (a fault-injection mode of the tests). */
int spad_spawn(const char *path, char *const argv[], char *const envp[], const char *cwd,
               int input, int output, int parent) {
    sigset_t all, old, empty;
    sigfillset(&all);
    sigemptyset(&empty);
    /* No handler of the runner may run in the child, which shares its memory. */
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = vfork();
    if (pid == 0) {
        child(path, argv, envp, cwd, input, output, (pid_t)parent, &empty);
    }
    int error = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = error;
    return pid;
}

// Stand-in for the nginx and httpd images critest runs, compiled with `gcc -static` when the images
// are built (CritestImages.cs). What critest checks of those images, and so what this does:
//   - nginx: PID 1 of its own PID namespace has "master process" in /proc/1/cmdline, /var/run/nginx.pid
//     holds the pid of a process `pidof nginx` finds, HTTP on :80 (port 12003 for hostnet-nginx);
//   - httpd: its log shows "httpd -D FOREGROUND", HTTP on :80.
// It re-executes itself under TITLE (so comm stays the file's name and the command line reads like
// nginx's master process), writes PID_FILE, prints BANNER, then runs busybox httpd in the foreground
// as its child and stops it on SIGTERM, SIGINT or SIGQUIT: as PID 1 nothing else would.
// Build: gcc -static -O2 -DSELF='"/usr/sbin/nginx"' -DPORT='"80"' -DDOCROOT='"/usr/share/nginx/html"'
//        [-DTITLE='"..."'] [-DPID_FILE='"..."'] [-DBANNER='"..."'] webserver.c
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#if !defined(SELF) || !defined(PORT) || !defined(DOCROOT)
#error "define SELF, PORT and DOCROOT"
#endif

int main(int argc, char **argv)
{
#ifdef TITLE
    if (argc < 1 || strcmp(argv[0], TITLE) != 0) {
        char *title_argv[] = { TITLE, NULL };
        execv(SELF, title_argv);
        perror("execv " SELF);
        return 127;
    }
#else
    (void)argc; (void)argv;
#endif
#ifdef BANNER
    fprintf(stderr, "%s\n", BANNER);
    fflush(stderr);
#endif
    sigset_t wanted;
    sigemptyset(&wanted);
    sigaddset(&wanted, SIGTERM);
    sigaddset(&wanted, SIGINT);
    sigaddset(&wanted, SIGQUIT);
    sigaddset(&wanted, SIGCHLD);
    sigprocmask(SIG_BLOCK, &wanted, NULL);

    pid_t server = fork();
    if (server < 0) { perror("fork"); return 1; }
    if (server == 0) {
        sigprocmask(SIG_UNBLOCK, &wanted, NULL);
        execl("/bin/busybox", "httpd", "-f", "-p", PORT, "-h", DOCROOT, (char *)NULL);
        perror("execl /bin/busybox httpd");
        _exit(127);
    }
#ifdef PID_FILE
    FILE *pid_file = fopen(PID_FILE, "w");
    if (pid_file == NULL) { perror("fopen " PID_FILE); kill(server, SIGKILL); return 1; }
    fprintf(pid_file, "%d\n", (int)getpid());
    fclose(pid_file);
#endif
    for (;;) {
        siginfo_t info;
        if (sigwaitinfo(&wanted, &info) < 0) {
            if (errno == EINTR) continue;
            perror("sigwaitinfo");
            return 1;
        }
        if (info.si_signo != SIGCHLD) {
            kill(server, SIGTERM);
            waitpid(server, NULL, 0);
            return 0;
        }
        // Reap every child (as PID 1 that includes orphans); leave when the server itself is gone.
        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            if (pid == server) {
                fprintf(stderr, "busybox httpd exited (status %d)\n", status);
                return 1;
            }
        }
    }
}

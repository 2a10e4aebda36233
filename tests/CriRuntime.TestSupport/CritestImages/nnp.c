// Stand-in for e2e-test-images/nonewprivs: installed set-uid root, it prints its effective uid, which
// is 0 unless no_new_privs kept the set-uid bit from taking effect (then it is the caller's uid).
// A small program of its own, as upstream's image has: a set-uid busybox would make every applet set-uid.
#include <stdio.h>
#include <unistd.h>

int main(void)
{
    printf("Effective uid: %d\n", (int)geteuid());
    return 0;
}

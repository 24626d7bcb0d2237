/* bench/dellink.c: the kernel's share of a DEL. `dellink NETNS IFNAME` enters NETNS, deletes IFNAME with one
 * RTM_DELLINK (by name, NLM_F_ACK) and prints how long that request took, in microseconds: what any DEL of a
 * macvlan waits for, whatever language it is written in (the kernel unregisters the device inside the send:
 * three expedited RCU grace periods, then netdev_run_todo's rcu_barrier(), a normal one). Exit 0, or 1 with a
 * message. Built and run by bench/bench.py; a single-threaded C program, so it may setns its only thread. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000LL + t.tv_nsec / 1000;
}

int main(int argc, char **argv)
{
    if (argc != 3 || strlen(argv[2]) >= 16) {
        fprintf(stderr, "usage: dellink NETNS IFNAME\n");
        return 1;
    }
    int nsfd = open(argv[1], O_RDONLY | O_CLOEXEC);
    if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) != 0) {
        perror("dellink: netns");
        return 1;
    }
    close(nsfd);
    int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (s < 0) {
        perror("dellink: socket");
        return 1;
    }
    struct {
        struct nlmsghdr h;
        struct ifinfomsg i;
        char attrs[RTA_SPACE(16)];
    } req;
    memset(&req, 0, sizeof req);
    struct rtattr *name = (struct rtattr *)req.attrs;
    size_t len = strlen(argv[2]) + 1;
    name->rta_type = IFLA_IFNAME;
    name->rta_len = RTA_LENGTH(len);
    memcpy(RTA_DATA(name), argv[2], len);
    req.h.nlmsg_len = NLMSG_LENGTH(sizeof req.i) + RTA_ALIGN(name->rta_len);
    req.h.nlmsg_type = RTM_DELLINK;
    req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    req.h.nlmsg_seq = 1;
    req.i.ifi_family = AF_UNSPEC;

    long long t0 = now_us();
    if (send(s, &req, req.h.nlmsg_len, 0) < 0) {
        perror("dellink: send");
        return 1;
    }
    long long took = now_us() - t0;
    char buf[1024];
    ssize_t n = recv(s, buf, sizeof buf, 0);
    struct nlmsghdr *h = (struct nlmsghdr *)buf;
    if (n < (ssize_t)NLMSG_LENGTH(sizeof(struct nlmsgerr)) || h->nlmsg_type != NLMSG_ERROR) {
        fprintf(stderr, "dellink: no ack\n");
        return 1;
    }
    int err = ((struct nlmsgerr *)NLMSG_DATA(h))->error;
    if (err != 0) {
        fprintf(stderr, "dellink: %s: %s\n", argv[2], strerror(-err));
        return 1;
    }
    printf("%lld\n", took);
    return 0;
}

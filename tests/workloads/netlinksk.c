/* netlinksk: netlink sockets: a NETLINK_ROUTE socket bound with the
 * kernel's port id (its pid) in groups RTMGRP_IPV4_IFADDR and
 * RTNLGRP_IPV6_PREFIX (joined with NETLINK_ADD_MEMBERSHIP) with
 * NETLINK_EXT_ACK and NETLINK_NO_ENOBUFS, a NETLINK_ROUTE socket bound at port
 * id 0x7f123456, and an unbound NETLINK_GENERIC one. After restore: port ids,
 * groups (NETLINK_LIST_MEMBERSHIPS), flags as at setup, and a route dump
 * request (RTM_GETLINK) answered on each route socket.
 */
#include "workload.h"

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

static int R1, R2, G;

static unsigned portid(int fd)
{
	struct sockaddr_nl a;
	socklen_t len = sizeof(a);
	if (getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		return 0xffffffff;
	return a.nl_pid;
}

static int getint(int fd, int opt)
{
	int v = -1;
	socklen_t len = sizeof(v);
	getsockopt(fd, SOL_NETLINK, opt, &v, &len);
	return v;
}

static void check_dump(const char *who, int fd)
{
	struct {
		struct nlmsghdr h;
		struct rtgenmsg g;
	} req = { { sizeof(req), RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, 1, 0 }, { AF_UNSPEC } };
	struct sockaddr_nl k = { .nl_family = AF_NETLINK };
	WL_CHECK(sendto(fd, &req, sizeof(req), 0, (struct sockaddr *)&k, sizeof(k)) == sizeof(req), "%s: send: %s", who,
		 wl_errname(errno));
	static char buf[65536];
	ssize_t n = recv(fd, buf, sizeof(buf), 0);
	WL_CHECK(n > (ssize_t)sizeof(struct nlmsghdr) && ((struct nlmsghdr *)buf)->nlmsg_type == RTM_NEWLINK,
		 "%s: no RTM_NEWLINK answer (%zd bytes)", who, n);
	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0) {
	}
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "netlinksk");
	R1 = socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
	struct sockaddr_nl a = { .nl_family = AF_NETLINK, .nl_groups = RTMGRP_IPV4_IFADDR };
	if (bind(R1, (struct sockaddr *)&a, sizeof(a)) < 0)
		wl_die("bind: %s", strerror(errno));
	int g = RTNLGRP_IPV6_PREFIX, one = 1;
	if (setsockopt(R1, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &g, sizeof(g)) < 0 ||
	    setsockopt(R1, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one)) < 0 ||
	    setsockopt(R1, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof(one)) < 0)
		wl_die("setsockopt: %s", strerror(errno));
	R2 = socket(AF_NETLINK, SOCK_DGRAM, NETLINK_ROUTE);
	struct sockaddr_nl b = { .nl_family = AF_NETLINK, .nl_pid = 0x7f123456 };
	if (bind(R2, (struct sockaddr *)&b, sizeof(b)) < 0)
		wl_die("bind 0x7f123456: %s", strerror(errno));
	G = socket(AF_NETLINK, SOCK_RAW, NETLINK_GENERIC);
	const unsigned p1 = portid(R1);
	wl_ready();
	wl_run_until_sigterm(0);
	WL_CHECK(portid(R1) == p1 && p1 == (unsigned)getpid(), "route socket port id %u, expected %u", portid(R1), p1);
	WL_CHECK(portid(R2) == 0x7f123456, "second route socket port id %#x", portid(R2));
	WL_CHECK(portid(G) == 0, "generic socket bound to %u", portid(G));
	uint32_t groups[4] = { 0 };
	socklen_t len = sizeof(groups);
	getsockopt(R1, SOL_NETLINK, NETLINK_LIST_MEMBERSHIPS, groups, &len);
	const uint32_t want = (1u << (RTNLGRP_IPV4_IFADDR - 1)) | (1u << (RTNLGRP_IPV6_PREFIX - 1));
	WL_CHECK(groups[0] == want && groups[1] == 0, "groups %#x %#x, expected %#x", groups[0], groups[1], want);
	WL_CHECK(getint(R1, NETLINK_EXT_ACK) == 1 && getint(R1, NETLINK_NO_ENOBUFS) == 1 && getint(R1, NETLINK_CAP_ACK) == 0,
		 "flags %d %d %d", getint(R1, NETLINK_EXT_ACK), getint(R1, NETLINK_NO_ENOBUFS), getint(R1, NETLINK_CAP_ACK));
	check_dump("route socket", R1);
	check_dump("second route socket", R2);
	wl_finish();
}

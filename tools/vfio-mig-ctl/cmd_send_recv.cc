// SPDX-License-Identifier: GPL-2.0-only
/*
 * send and recv: a device's state over TCP, from one vfio-mig-ctl to
 * another, with the receiver's verdict on the digest of what it loaded.
 */
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "commands.h"
#include "common.h"
#include "stream.h"

namespace uvfio::mig_ctl {

namespace {

/*
 * "PORT" or "HOST:PORT" (IPv6 in brackets) into host and port: false if
 * the port is not a decimal number from 0 (listen: any free port) or 1
 * to 65535. getaddrinfo() would take 99999 as 34463.
 */
bool split_address(const std::string &a, bool listen_, std::string *host,
		   std::string *port)
{
	size_t colon = a.rfind(':');
	if (colon == std::string::npos) {
		*host = "";
		*port = a;
	} else {
		*host = a.substr(0, colon);
		*port = a.substr(colon + 1);
		if (host->size() > 1 && host->front() == '[' && host->back() == ']')
			*host = host->substr(1, host->size() - 2);
	}
	if (port->empty() || port->size() > 5 ||
	    port->find_first_not_of("0123456789") != std::string::npos)
		return false;
	unsigned long n = std::stoul(*port);
	return n <= 65535 && (n > 0 || listen_);
}

/* The address a socket is bound to, as HOST:PORT ([HOST]:PORT for v6). */
std::string bound_address(int fd, unsigned *port)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[NI_MAXHOST], serv[NI_MAXSERV];
	if (getsockname(fd, reinterpret_cast<struct sockaddr *>(&ss), &len) ||
	    getnameinfo(reinterpret_cast<struct sockaddr *>(&ss), len, host,
			sizeof(host), serv, sizeof(serv),
			NI_NUMERICHOST | NI_NUMERICSERV))
		return "?";
	*port = unsigned(std::stoul(serv));
	std::string h = host;
	return (ss.ss_family == AF_INET6 ? "[" + h + "]" : h) + ":" + serv;
}

/* A connected (or, with listen, a listening) TCP socket, or -errno. */
int tcp_socket(const std::string &addr, bool listen_, std::string *why)
{
	std::string host, port;
	if (!split_address(addr, listen_, &host, &port)) {
		*why = "bad address \"" + addr + "\" (want [HOST:]PORT, PORT " +
		       (listen_ ? "0 (any free port) to 65535)"
				: "1 to 65535)");
		return -EINVAL;
	}
	struct addrinfo hints = {}, *res;
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	/* Both ends default to loopback: a device's state is not sent to
	 * (or taken from) the network unless a host says so. */
	int e = getaddrinfo(host.empty() ? "127.0.0.1" : host.c_str(),
			    port.c_str(), &hints, &res);
	if (e) {
		*why = "cannot resolve " + addr + ": " + gai_strerror(e);
		return -EINVAL;
	}
	int fd = -1, err = 0;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0) {
			err = errno;
			continue;
		}
		int one = 1;
		if (listen_ ? !bind(fd, ai->ai_addr, ai->ai_addrlen) &&
				      !listen(fd, 1)
			    : !connect(fd, ai->ai_addr, ai->ai_addrlen)) {
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			break;
		}
		err = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		*why = std::string(listen_ ? "cannot listen on " : "cannot connect to ") +
		       addr + ": " + strerror(err);
		return -err;
	}
	return fd;
}

/*
 * send: save the device, stream it to the receiver, half-close, and wait
 * for its one-line verdict ("OK DIGEST" or "ERR why").
 */
int cmd_send(const std::string &spec, const std::string &to, bool as_json)
{
	/*
	 * Connected first: whatever fails after this (the device not
	 * opening included) closes the connection, and the receiver, which
	 * gets a truncated stream, says so and ends instead of waiting.
	 */
	std::string why;
	int sock = tcp_socket(to, false, &why);
	/* An address that does not parse or resolve is the user's. */
	if (sock < 0)
		return fail(sock == -EINVAL ? EXIT_USAGE : EXIT_FAIL,
			    "send: " + why);
	CmdDevice d;
	int rc = d.open(spec);
	if (!rc)
		rc = d.open_mig("send");
	if (rc) {
		close(sock);
		return rc;
	}
	/* Streamed as it is read; a failed save leaves the receiver a
	 * truncated stream, which it rejects (DigestSink). */
	__u64 estimate = 0;
	if (protocol_opt == Protocol::V2)
		d.dev->data_size(&estimate);
	StreamStats st;
	__u64 digest = 0;
	int out_err, ret;
	auto t0 = std::chrono::steady_clock::now();
	{
		ProgressBar bar("sending", estimate);
		ret = save_streaming(*d.mig, sock, false, &digest, &st.bytes,
				     &out_err, &why, bar.fn());
	}
	st.seconds = std::chrono::duration<double>(
			     std::chrono::steady_clock::now() - t0).count();
	if (out_err) {
		close(sock);
		return fail(EXIT_FAIL, "send: the connection failed: " +
					       std::string(strerror(-out_err)));
	}
	if (ret) {
		close(sock);
		return fail(EXIT_FAIL, "send: " + why);
	}
	shutdown(sock, SHUT_WR);
	char reply[256] = {};
	ssize_t n, got = 0;
	while (got < ssize_t(sizeof(reply) - 1) &&
	       (n = read(sock, reply + got, sizeof(reply) - 1 - got)) > 0)
		got += n;
	close(sock);
	std::string r(reply, size_t(got));
	while (!r.empty() && r.back() == '\n')
		r.pop_back();
	if (r.rfind("OK ", 0) != 0)
		return fail(EXIT_FAIL, "send: the receiver " +
					       (r.empty() ? std::string("closed the connection without a verdict")
							  : "said: " + r.substr(r.rfind("ERR ", 0) ? 0 : 4)));
	bool verified = r.substr(3) == hex64(digest);
	json j = d.report({{"protocol", protocol_name(protocol_opt)},
			   {"to", to}, {"bytes", st.bytes},
			   {"seconds", st.seconds}, {"digest", hex64(digest)},
			   {"verified", verified}});
	if (as_json)
		emit_json(j);
	else
		fmt::print("sent {} bytes from {}{} to {} in {:.3f} s; receiver "
			   "{} (digest {})\n", st.bytes, d.label(), via(), to,
			   st.seconds,
			   verified ? "verified the state" : "has a DIFFERENT state",
			   hex64(digest));
	return verified ? 0 : fail(EXIT_FAIL, "send: the receiver's state differs");
}

/* recv: accept one sender, load its stream, answer with a verdict. */
int cmd_recv(const std::string &spec, const std::string &listen_addr,
	     bool as_json)
{
	std::string why;
	int lsock = tcp_socket(listen_addr, true, &why);
	if (lsock < 0)
		return fail(lsock == -EINVAL ? EXIT_USAGE : EXIT_FAIL,
			    "recv: " + why);
	CmdDevice d;
	int rc = d.open(spec);
	if (!rc)
		rc = d.open_mig("recv");
	if (rc) {
		close(lsock);
		return rc;
	}
	/* The port bound, which --listen 0 leaves to the kernel to pick. */
	unsigned port = 0;
	std::string bound = bound_address(lsock, &port);
	emit_json(d.report({{"protocol", protocol_name(protocol_opt)},
			    {"listen", bound}, {"port", port}}));
	fmt::print(stderr, "recv: listening on {}\n", bound);
	int sock = accept4(lsock, nullptr, nullptr, SOCK_CLOEXEC);
	int err = errno;
	close(lsock);
	if (sock < 0)
		return fail(EXIT_FAIL, "recv: accept: " + std::string(strerror(err)));
	StreamStats st;
	__u64 digest = 0;
	int ret;
	{
		ProgressBar bar("receiving", 0);
		ret = load_digest_run(d, sock, &st, &digest, &why, bar.fn());
	}
	auto answer = [&](const std::string &line) {
		std::string l = line + "\n";
		if (write(sock, l.data(), l.size()) < 0) {
			/* The sender is gone; the verdict is ours alone. */
		}
		close(sock);
	};
	if (ret) {
		answer("ERR " + why);
		return fail(EXIT_FAIL, "recv: " + why);
	}
	answer("OK " + hex64(digest));
	print_loaded(d, "received", st, digest, as_json,
		     {{"listen", bound}, {"port", port}});
	return 0;
}

} // namespace

Command add_send(CLI::App &app)
{
	struct Args {
		std::string spec, addr;
		bool as_json = false;
	};
	auto a = std::make_shared<Args>();
	auto *sub = app.add_subcommand("send", "save a device and send its state "
				       "over TCP to vfio-mig-ctl recv");
	sub->add_option("device", a->spec, kDeviceHelp)->required();
	sub->add_option("--to", a->addr, "[HOST:]PORT of the receiver (host "
			"default 127.0.0.1, PORT 1 to 65535)")->required();
	sub->add_flag("--json", a->as_json, "JSON report");
	return {sub, true,
		[a] { return cmd_send(a->spec, a->addr, a->as_json); }};
}

Command add_recv(CLI::App &app)
{
	struct Args {
		std::string spec, addr;
		bool as_json = false;
	};
	auto a = std::make_shared<Args>();
	auto *sub = app.add_subcommand("recv", "receive a device's state over "
				       "TCP, load it and run it");
	sub->add_option("device", a->spec, kDeviceHelp)->required();
	sub->add_option("--listen", a->addr, "[HOST:]PORT to accept one sender "
			"on (host default 127.0.0.1; port 0: any free one, "
			"printed)")
		->required();
	sub->add_flag("--json", a->as_json, "JSON report");
	return {sub, true,
		[a] { return cmd_recv(a->spec, a->addr, a->as_json); }};
}

} // namespace uvfio::mig_ctl

package main

// cluster-dns: the cluster's DNS server, enough of what CoreDNS's kubernetes plugin does
// for one node. It answers A records for Services (<svc>.<ns>.svc.<domain>: the
// ClusterIP, or the ready endpoints of a headless Service) and for the hostnames of a
// headless Service's pods (<pod-hostname>.<svc>.<ns>.svc.<domain>, as StatefulSets and
// KubeRay use), from informers on Services and EndpointSlices. Other names go to the
// host's resolvers. Stage Jobs reach storage by Service name, KubeRay's workers reach the
// head by its Service's name: neither works without this.

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/clientcmd"
)

const ttl = 5 // seconds: Services and pods come and go during a test run

type clusterDNS struct {
	domain    string // "cluster.local."
	services  corelisters.ServiceLister
	slices    discoverylisters.EndpointSliceLister
	upstreams []string
}

func runClusterDNS() int {
	fs := flag.NewFlagSet("cluster-dns", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of a client allowed to list Services and EndpointSlices")
	listen := fs.String("listen", "127.0.0.1:53", "address to serve DNS on, UDP and TCP")
	domain := fs.String("domain", "cluster.local", "the cluster's DNS domain")
	resolvConf := fs.String("resolv-conf", "/etc/resolv.conf", "where the upstream resolvers are read from")
	fs.Parse(os.Args[1:]) // nolint:errcheck // ExitOnError

	config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster-dns:", err)
		return 1
	}
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster-dns:", err)
		return 1
	}
	factory := informers.NewSharedInformerFactory(client, 10*time.Minute)
	server := &clusterDNS{
		domain:    dns.Fqdn(*domain),
		services:  factory.Core().V1().Services().Lister(),
		slices:    factory.Discovery().V1().EndpointSlices().Lister(),
		upstreams: readUpstreams(*resolvConf),
	}
	stop := make(chan struct{})
	factory.Start(stop)
	factory.WaitForCacheSync(stop)

	dns.HandleFunc(".", server.serve)
	errs := make(chan error, 2)
	for _, network := range []string{"udp", "tcp"} {
		go func(network string) {
			errs <- (&dns.Server{Addr: *listen, Net: network}).ListenAndServe()
		}(network)
	}
	fmt.Fprintf(os.Stderr, "cluster-dns: serving %s on %s\n", server.domain, *listen)
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	select {
	case err := <-errs:
		fmt.Fprintln(os.Stderr, "cluster-dns:", err)
		return 1
	case <-signals:
		close(stop)
		return 0
	}
}

// readUpstreams lists the nameservers of a resolv.conf, as host:53.
func readUpstreams(path string) []string {
	config, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return nil
	}
	upstreams := make([]string, 0, len(config.Servers))
	for _, s := range config.Servers {
		upstreams = append(upstreams, net.JoinHostPort(s, config.Port))
	}
	return upstreams
}

func (s *clusterDNS) serve(w dns.ResponseWriter, request *dns.Msg) {
	if len(request.Question) != 1 {
		reply := new(dns.Msg)
		reply.SetRcode(request, dns.RcodeFormatError)
		w.WriteMsg(reply) // nolint:errcheck
		return
	}
	question := request.Question[0]
	name := strings.ToLower(question.Name)
	if !dns.IsSubDomain(s.domain, name) {
		w.WriteMsg(s.forward(request)) // nolint:errcheck
		return
	}
	reply := new(dns.Msg)
	reply.SetReply(request)
	reply.Authoritative = true
	ips, found := s.lookup(strings.TrimSuffix(name, "."+s.domain))
	if !found {
		reply.SetRcode(request, dns.RcodeNameError)
	} else if question.Qtype == dns.TypeA || question.Qtype == dns.TypeANY {
		for _, ip := range ips {
			reply.Answer = append(reply.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: question.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl},
				A:   ip,
			})
		}
	} // other types of a known name: NOERROR with no answer, as CoreDNS does
	w.WriteMsg(reply) // nolint:errcheck
}

// lookup resolves a name relative to the cluster domain: "<svc>.<ns>.svc" or
// "<hostname>.<svc>.<ns>.svc". found is false for names that do not exist.
func (s *clusterDNS) lookup(relative string) (ips []net.IP, found bool) {
	parts := strings.Split(relative, ".")
	if len(parts) < 3 || parts[len(parts)-1] != "svc" {
		return nil, false
	}
	namespace, serviceName := parts[len(parts)-2], parts[len(parts)-3]
	service, err := s.services.Services(namespace).Get(serviceName)
	if err != nil {
		return nil, false
	}
	hostname := ""
	switch len(parts) {
	case 3:
		if service.Spec.ClusterIP != "" && service.Spec.ClusterIP != "None" {
			return []net.IP{net.ParseIP(service.Spec.ClusterIP).To4()}, true
		}
	case 4:
		hostname = parts[0]
	default:
		return nil, false
	}
	selector := labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: serviceName})
	slices, _ := s.slices.EndpointSlices(namespace).List(selector)
	for _, slice := range slices {
		for _, endpoint := range slice.Endpoints {
			ready := endpoint.Conditions.Ready == nil || *endpoint.Conditions.Ready
			// A headless Service publishes not-ready pods only when it asks to.
			if !ready && !service.Spec.PublishNotReadyAddresses {
				continue
			}
			if hostname != "" && (endpoint.Hostname == nil || *endpoint.Hostname != hostname) {
				continue
			}
			for _, address := range endpoint.Addresses {
				if ip := net.ParseIP(address).To4(); ip != nil {
					ips = append(ips, ip)
				}
			}
		}
	}
	return ips, hostname == "" || len(ips) > 0
}

// forward asks the host's resolvers; SERVFAIL when none answers.
func (s *clusterDNS) forward(request *dns.Msg) *dns.Msg {
	client := &dns.Client{Timeout: 2 * time.Second}
	for _, upstream := range s.upstreams {
		if reply, _, err := client.Exchange(request, upstream); err == nil {
			return reply
		}
	}
	reply := new(dns.Msg)
	reply.SetRcode(request, dns.RcodeServerFailure)
	return reply
}

"""cni-rdma: CNI plugins for RDMA networking in Kubernetes pods."""

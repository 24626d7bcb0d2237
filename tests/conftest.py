"""Suite-wide settings: no hypothesis deadlines (CI machines are shared and slow; speed lives in bench/)."""
from hypothesis import HealthCheck, settings

settings.register_profile("cni-rdma", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("cni-rdma")

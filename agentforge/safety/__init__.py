"""Safety: the misevolution gate, its monitors, the policy and the audit log (sandboxing lives in ``sandbox``)."""

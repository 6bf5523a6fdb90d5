import ipaddress

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from localcluster.pki import CLIENTS, write_pki


def _load(path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_serving_certificate_covers_loopback_and_service_names(tmp_path) -> None:
    pki = write_pki(tmp_path, service_ip="10.96.0.1")
    ca, serving = _load(pki.ca_cert), _load(pki.serving_cert)
    serving.verify_directly_issued_by(ca)
    sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in sans.get_values_for_type(x509.IPAddress)
    assert ipaddress.ip_address("10.96.0.1") in sans.get_values_for_type(x509.IPAddress)
    assert "kubernetes.default.svc" in sans.get_values_for_type(x509.DNSName)
    usage = serving.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_client_certificates_carry_the_rbac_identities(tmp_path) -> None:
    pki = write_pki(tmp_path, service_ip="10.96.0.1")
    ca = _load(pki.ca_cert)
    for who, (cn, org) in CLIENTS.items():
        cert = _load(pki.client_cert(who))
        cert.verify_directly_issued_by(ca)
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == cn
        orgs = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
        assert orgs == ([org] if org else [])
        assert oct(pki.client_key(who).stat().st_mode & 0o777) == "0o600"


def test_admin_is_cluster_admin_and_components_are_not(tmp_path) -> None:
    assert CLIENTS["admin"][1] == "system:masters"
    assert CLIENTS["controller-manager"] == ("system:kube-controller-manager", None)
    assert CLIENTS["scheduler"] == ("system:kube-scheduler", None)

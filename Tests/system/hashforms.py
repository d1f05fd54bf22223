"""Every `password_hash` form of the database auth plugins (AuthBackends' PasswordCheck), with
the value emqttd stored for a password and salt, for the SQL and MongoDB tests."""

import hashlib
import warnings


def digest(name, data):
    return data.decode() if name == "plain" else hashlib.new({"sha": "sha1"}.get(name, name), data).hexdigest()


# The classic bcrypt test vector (OpenBSD / John the Ripper): password "U*U", cost 5.
BCRYPT_VECTOR = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"


def bcrypt_hash(password):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import crypt
        h = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
        if h and h.startswith("$2"):
            return h
    except ImportError:
        pass
    assert password == "U*U", "no bcrypt here: only the published vector"
    return BCRYPT_VECTOR


# (tag, the password_hash value as TOML would hold it, function(password, salt) -> stored value).
HASH_FORMS = []
for _d in ["plain", "md5", "sha", "sha256", "sha512"]:
    HASH_FORMS.append((_d, _d, lambda p, s, d=_d: digest(d, p.encode())))
    HASH_FORMS.append((f"{_d}-pre", ["salt", _d], lambda p, s, d=_d: digest(d, (s + p).encode())))
    HASH_FORMS.append((f"{_d}-suf", [_d, "salt"], lambda p, s, d=_d: digest(d, (p + s).encode())))
HASH_FORMS.append(("pbkdf2", ["pbkdf2", "sha256", 1000, 20],
                   lambda p, s: hashlib.pbkdf2_hmac("sha256", p.encode(), s.encode(), 1000, 20).hex()))
HASH_FORMS.append(("bcrypt", "bcrypt", lambda p, s: bcrypt_hash(p)))
VARIANT_PASSWORD = "U*U"   # the bcrypt vector's, should crypt be missing

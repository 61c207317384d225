//! Flag values in the forms people type: sizes with units (`64MiB`, `64 MiB`, `16M`)
//! and listen addresses as exporters take them (`:9477`, `localhost:9477`, `[::1]:9477`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};

/// A size in bytes: a whole number with an optional unit, binary (`KiB`, `MiB`, `GiB`,
/// and `K`, `M`, `G`, as `ls` and `du` mean them) or decimal (`kB`, `MB`, `GB`); `B`
/// and spaces allowed; case-insensitive except that `kB`/`MB`/`GB` are decimal.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t: String = s.chars().filter(|c| !c.is_whitespace() && *c != '_').collect();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().map_err(|_| format!("`{s}` is not a size (examples: 4096, 64KiB, 16MiB, 1GB)"))?;
    let factor: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (use B, KiB, MiB, GiB, kB, MB or GB)")),
    };
    n.checked_mul(factor).ok_or_else(|| format!("`{s}` is too large"))
}

/// A size of at least `min` bytes (clap value parser).
pub fn size_at_least(min: u64) -> impl Fn(&str) -> Result<u64, String> + Clone + Send + Sync + 'static {
    move |s| match parse_size(s)? {
        n if n < min => Err(format!("`{s}` is {n} bytes; at least {min} are needed")),
        n => Ok(n),
    }
}

/// A listen address: `HOST:PORT`, `[IPv6]:PORT`, `:PORT` or `PORT` (both on 127.0.0.1:
/// loopback unless an address says otherwise; `0.0.0.0:PORT` is every interface),
/// `localhost:PORT` (127.0.0.1), or a host name that resolves.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    let t = s.trim();
    if let Ok(a) = t.parse::<SocketAddr>() {
        return Ok(a);
    }
    let port = |p: &str| p.parse::<u16>().map_err(|_| format!("`{s}`: `{p}` is not a port (0-65535)"));
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    if let Some(p) = t.strip_prefix(':') {
        return Ok(SocketAddr::new(loopback, port(p)?));
    }
    if t.bytes().all(|b| b.is_ascii_digit()) && !t.is_empty() {
        return Ok(SocketAddr::new(loopback, port(t)?));
    }
    let Some((host, p)) = t.rsplit_once(':') else {
        return Err(format!("`{s}` is not an address: use HOST:PORT, :PORT or [IPv6]:PORT"));
    };
    let p = port(p)?;
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::new(loopback, p));
    }
    (host, p)
        .to_socket_addrs()
        .map_err(|e| format!("`{s}`: cannot resolve `{host}` ({e})"))?
        .next()
        .ok_or_else(|| format!("`{s}`: `{host}` has no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_units_and_spaces() {
        for (text, n) in [
            ("4096", 4096),
            ("64MiB", 64 << 20),
            ("64 MiB", 64 << 20),
            ("64mib", 64 << 20),
            ("16M", 16 << 20),
            ("1GiB", 1 << 30),
            ("512 KiB", 512 << 10),
            ("1kB", 1000),
            ("2MB", 2_000_000),
            ("10 B", 10),
            ("1_048_576", 1 << 20),
        ] {
            assert_eq!(parse_size(text), Ok(n), "{text}");
        }
        for bad in ["", "MiB", "64 parsecs", "-1", "1.5MiB", "99999999999999999999"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert!(size_at_least(1024)("1000").unwrap_err().contains("at least 1024"));
    }

    #[test]
    fn addresses_take_the_usual_forms() {
        let v4 = |p| SocketAddr::from(([127, 0, 0, 1], p));
        assert_eq!(parse_listen(":9478"), Ok(v4(9478)));
        assert_eq!(parse_listen("9478"), Ok(v4(9478)));
        assert_eq!(parse_listen("localhost:9478"), Ok(v4(9478)));
        assert_eq!(parse_listen("127.0.0.1:9478"), Ok(v4(9478)));
        assert_eq!(parse_listen("[::1]:9478"), Ok("[::1]:9478".parse().unwrap()));
        assert_eq!(parse_listen("0.0.0.0:9478"), Ok("0.0.0.0:9478".parse().unwrap()));
        assert!(parse_listen(":99999").unwrap_err().contains("not a port"));
        assert!(parse_listen("nothing").is_err());
    }
}

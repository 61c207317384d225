//! Unit tests of the charts: escaping, well-formed XML, ticks and number labels, empty and
//! non-finite input, determinism, palette contrast.

use super::*;

/// A small well-formedness check of what the charts write: tags balance with one root,
/// attributes are `name="value"`, and every `&` starts an entity. Returns the element names.
fn well_formed(svg: &str) -> Result<Vec<String>, String> {
    fn entities(text: &str) -> Result<(), String> {
        for (i, _) in text.match_indices('&') {
            let rest = &text[i..];
            let ok = ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"].iter().any(|e| rest.starts_with(e));
            if !ok {
                return Err(format!("bare & in {text:?}"));
            }
        }
        if text.contains('>') { Err(format!("raw > in {text:?}")) } else { Ok(()) }
    }
    let (mut stack, mut names, mut roots) = (Vec::<String>::new(), Vec::new(), 0);
    let mut rest = svg;
    while let Some(i) = rest.find('<') {
        if stack.is_empty() && !rest[..i].trim().is_empty() {
            return Err("text outside the root".into());
        }
        entities(&rest[..i])?;
        rest = &rest[i + 1..];
        let end = rest.find('>').ok_or("unclosed tag")?;
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack.pop().ok_or(format!("</{name}> without an opening tag"))?;
            if open != name {
                return Err(format!("<{open}> closed by </{name}>"));
            }
            continue;
        }
        let (body, closed) = tag.strip_suffix('/').map_or((tag, false), |b| (b, true));
        let name: String = body.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
        if name.is_empty() {
            return Err(format!("bad tag <{tag}>"));
        }
        let mut attrs = body[name.len()..].trim_start();
        while !attrs.is_empty() {
            let eq = attrs.find("=\"").ok_or(format!("bad attribute in <{tag}>"))?;
            if !attrs[..eq].chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ':') {
                return Err(format!("bad attribute name in <{tag}>"));
            }
            let value_end = attrs[eq + 2..].find('"').ok_or("unterminated attribute")? + eq + 2;
            let value = &attrs[eq + 2..value_end];
            if value.contains('<') {
                return Err(format!("< in attribute {value:?}"));
            }
            entities(value)?;
            attrs = attrs[value_end + 1..].trim_start();
        }
        if stack.is_empty() {
            roots += 1;
        }
        names.push(name.clone());
        if !closed {
            stack.push(name);
        }
    }
    if !rest.trim().is_empty() || !stack.is_empty() || roots != 1 {
        return Err(format!("unbalanced: open {stack:?}, {roots} roots, trailing {rest:?}"));
    }
    Ok(names)
}

const EVIL: &str = r#"<script>alert("x")&'</script>"#;

fn titles(s: &str) -> Titles {
    Titles::new(s, s, s)
}

/// One chart of each kind, with `name` in every label it has.
fn every_chart(name: &str, value: f64) -> Vec<String> {
    let series = vec![
        Series { name: name.into(), points: vec![(0.0, 1.0), (1.0, value), (2.0, 3.0)] },
        Series { name: "second".into(), points: vec![(0.5, 2.0), (1.5, 2.5)] },
    ];
    let layers = vec![
        Layer { name: name.into(), values: vec![10.0, value, 30.0] },
        Layer { name: "user_text".into(), values: vec![5.0, 5.0] },
    ];
    let options = LineOptions {
        markers: vec![Marker { at: 1.0, label: name.into() }],
        thresholds: vec![Marker { at: 4.0, label: name.into() }],
        y_from_zero: true,
    };
    let row = ComparisonRow {
        metric: name.into(),
        a: Some(Ci { value: 1.0, lo: 0.5, hi: 1.5 }),
        b: Some(Ci { value, lo: value - 1.0, hi: value + 1.0 }),
    };
    let t = titles(name);
    vec![
        stacked_area(&t, &[0.0, 1.0, 2.0], &layers),
        lines(&t, &series, &options),
        bars(&t, &[Bar::new(name, value), Bar::new("Read", -2.0)]),
        comparison(&t, [name, name], &[row]),
        scatter(&t, &series, LogScale { x: false, y: true }),
    ]
}

#[test]
fn escape_writes_entities_and_replaces_what_xml_cannot_carry() {
    assert_eq!(escape(EVIL), "&lt;script&gt;alert(&quot;x&quot;)&amp;&#39;&lt;/script&gt;");
    assert_eq!(escape("a\u{0}b\u{1b}c\td"), "a\u{FFFD}b\u{FFFD}c\td");
    assert_eq!(label("abcdefgh", 5), "abcd…");
    assert_eq!(label("<<<<<<", 3), "&lt;&lt;…", "cut before escaping, never inside an entity");
}

#[test]
fn every_chart_is_well_formed_accessible_and_escapes_its_labels() {
    for (kind, svg) in ["stacked", "lines", "bars", "comparison", "scatter"].iter().zip(every_chart(EVIL, 2.0)) {
        let names = well_formed(&svg).unwrap_or_else(|e| panic!("{kind}: {e}\n{svg}"));
        assert_eq!(names[0], "svg", "{kind}");
        assert_eq!(names[1], "title", "{kind}: the accessible name comes first");
        assert!(svg.contains(r#"role="img""#) && svg.contains(r#"aria-label="&lt;script&gt;"#), "{kind}");
        assert!(!svg.contains("<script") && !svg.contains("alert(\""), "{kind}: raw label\n{svg}");
        assert!(svg.matches("&lt;script&gt;").count() >= 3, "{kind}: labels missing\n{svg}");
        assert!(!names.iter().any(|n| n == "script" || n == "foreignObject" || n == "image"), "{kind}");
        assert!(!svg.contains("http") || svg.matches("http").count() == 1, "{kind}: only the xmlns URI");
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{kind}");
    }
}

#[test]
fn the_same_input_gives_the_same_bytes() {
    assert_eq!(every_chart("Read", 2.0), every_chart("Read", 2.0));
    assert_ne!(every_chart("Read", 2.0), every_chart("Read", 2.5));
}

#[test]
fn ticks_are_round_and_cover_the_range() {
    assert_eq!(nice_ticks(0.0, 1.0, 5), [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
    assert_eq!(nice_ticks(0.0, 170_251.0, 5), [0.0, 50_000.0, 100_000.0, 150_000.0, 200_000.0]);
    assert_eq!(nice_ticks(3.0, 7.0, 5), [3.0, 4.0, 5.0, 6.0, 7.0]);
    assert_eq!(nice_ticks(7.0, 3.0, 5), [3.0, 4.0, 5.0, 6.0, 7.0], "reversed ends");
    assert_eq!(nice_ticks(-3.0, 7.0, 5), [-4.0, -2.0, 0.0, 2.0, 4.0, 6.0, 8.0]);
    assert_eq!(nice_ticks(0.0, 0.0, 5), [0.0, 0.2, 0.4, 0.6, 0.8, 1.0], "a zero range is widened");
    assert_eq!(nice_ticks(5.0, 5.0, 5), [2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
    assert_eq!(nice_ticks(f64::NAN, 1.0, 5), Vec::<f64>::new());
    assert_eq!(nice_ticks(0.001, 0.0013, 3), [0.001, 0.0011, 0.0012, 0.0013]);
    let labels: Vec<String> = nice_ticks(0.0, 170_251.0, 5).into_iter().map(format_number).collect();
    assert_eq!(labels, ["0", "50k", "100k", "150k", "200k"]);
    assert_eq!(log_ticks(1.0, 1000.0), [1.0, 10.0, 100.0, 1000.0]);
    assert_eq!(log_ticks(3.0, 40.0), [2.0, 5.0, 10.0, 20.0, 50.0]);
}

#[test]
fn numbers_are_short_and_fixed() {
    let cases = [
        (0.0, "0"),
        (0.25, "0.25"),
        (950.0, "950"),
        (1_500.0, "1.5k"),
        (12_000.0, "12k"),
        (12_345.0, "12.3k"),
        (170_251.0, "170k"),
        (999_999.0, "1M"),
        (1_200_000.0, "1.2M"),
        (3e9, "3G"),
        (-2_500.0, "-2.5k"),
        (0.000_25, "2.5e-4"),
        (2.0 / 3.0, "0.667"),
        (f64::NAN, "–"),
    ];
    for (v, want) in cases {
        assert_eq!(format_number(v), want, "{v}");
    }
}

#[test]
fn empty_or_non_finite_data_gives_a_small_no_data_chart() {
    let t = titles("Context <empty>");
    let nan = vec![Series { name: "s".into(), points: vec![(f64::NAN, 1.0), (1.0, f64::INFINITY)] }];
    let row = ComparisonRow { metric: "m".into(), a: Some(Ci { value: f64::NAN, lo: 0.0, hi: 1.0 }), b: None };
    let charts = [
        stacked_area(&t, &[], &[Layer { name: "a".into(), values: vec![1.0] }]),
        stacked_area(&t, &[f64::NAN], &[Layer { name: "a".into(), values: vec![1.0] }]),
        stacked_area(&t, &[1.0, 2.0], &[]),
        lines(&t, &[], &LineOptions::default()),
        lines(&t, &nan, &LineOptions::default()),
        bars(&t, &[]),
        bars(&t, &[Bar::new("x", f64::NAN)]),
        comparison(&t, ["a", "b"], &[]),
        comparison(&t, ["a", "b"], &[row]),
        scatter(&t, &nan, LogScale::default()),
        scatter(
            &t,
            &[Series { name: "s".into(), points: vec![(0.0, 1.0), (-1.0, 2.0)] }],
            LogScale { x: true, y: false },
        ),
    ];
    for svg in charts {
        well_formed(&svg).unwrap();
        assert!(svg.contains("no data") && svg.contains("Context &lt;empty&gt;"), "{svg}");
    }
}

#[test]
fn non_finite_points_are_skipped_and_the_rest_drawn() {
    let t = titles("t");
    let s = Series { name: String::new(), points: vec![(0.0, 1.0), (1.0, f64::NAN), (2.0, 3.0), (3.0, 4.0)] };
    let svg = lines(&t, std::slice::from_ref(&s), &LineOptions::default());
    well_formed(&svg).unwrap();
    // The NaN breaks the line: a dot (M…h0) for the first point, a segment for the last two.
    let path = svg.split("<path d=\"").nth(1).unwrap().split('"').next().unwrap();
    assert_eq!((path.matches('M').count(), path.matches('L').count(), path.matches("h0").count()), (2, 1, 1), "{path}");
    assert!(!svg.contains("NaN"));
    let dots = scatter(&t, &[s], LogScale::default());
    assert_eq!(dots.matches("<circle").count(), 3);
    let b = bars(&t, &[Bar::new("ok", 2.0), Bar::new("nan", f64::NAN), Bar::new("inf", f64::INFINITY)]);
    assert_eq!(b.matches(r#"<rect"#).count(), 1);
    // On a log axis, points at or below zero are skipped.
    let log = Series { name: String::new(), points: vec![(1.0, 0.0), (10.0, 5.0), (100.0, -1.0), (1000.0, 50.0)] };
    assert_eq!(scatter(&t, &[log], LogScale { x: true, y: true }).matches("<circle").count(), 2);
}

#[test]
fn stacked_layers_and_markers_are_drawn_in_range() {
    let t = titles("composition");
    let layers = vec![
        Layer { name: "tool_result:Read".into(), values: vec![100.0, 200.0, f64::NAN, -5.0] },
        Layer { name: "user_text".into(), values: vec![50.0, 50.0, 50.0, 50.0] },
    ];
    let svg = stacked_area(&t, &[0.0, 1.0, 2.0, 3.0], &layers);
    assert_eq!(svg.matches("<path").count(), 2);
    assert!(svg.contains(">250<") || svg.contains(">300<"), "the y axis reaches the largest total, 250\n{svg}");
    let one = stacked_area(&t, &[5.0], &layers);
    assert_eq!(one.matches("<path").count(), 2, "a single x is drawn");
    let s = Series { name: "context".into(), points: vec![(0.0, 1_000.0), (10.0, 150_000.0)] };
    let options = LineOptions {
        markers: vec![Marker { at: 5.0, label: "compaction".into() }, Marker { at: 99.0, label: "outside".into() }],
        thresholds: vec![Marker { at: 200_000.0, label: "window".into() }],
        y_from_zero: true,
    };
    let svg = lines(&t, &[s], &options);
    assert!(svg.contains(">compaction<") && !svg.contains(">outside<"));
    assert!(svg.contains(">window<") && svg.contains(">200k<"), "the y axis is extended to the threshold");
}

#[test]
fn long_series_are_thinned_to_a_bounded_size() {
    let points: Vec<(f64, f64)> = (0..50_000).map(|i| (i as f64, (i % 97) as f64)).collect();
    let svg = lines(&titles("t"), &[Series { name: "s".into(), points }], &LineOptions::default());
    let drawn = svg.matches('L').count() + 1;
    assert!((MAX_POINTS / 2..=MAX_POINTS).contains(&drawn), "{drawn}");
    assert!(svg.len() < 40 * MAX_POINTS, "{} bytes", svg.len());
    let kept = thin(&(0..10_001).collect::<Vec<_>>());
    assert!(kept.len() <= MAX_POINTS && kept[0] == 0 && kept[kept.len() - 1] == 10_000);
}

/// WCAG 2 relative luminance and contrast ratio.
fn contrast(a: &str, b: &str) -> f64 {
    let lum = |hex: &str| {
        let c = |i: usize| {
            let v = f64::from(u8::from_str_radix(&hex[i..i + 2], 16).unwrap()) / 255.0;
            if v <= 0.03928 { v / 12.92 } else { ((v + 0.055) / 1.055).powf(2.4) }
        };
        0.2126 * c(1) + 0.7152 * c(3) + 0.0722 * c(5)
    };
    let (x, y) = (lum(a), lum(b));
    (x.max(y) + 0.05) / (x.min(y) + 0.05)
}

#[test]
fn palette_colours_read_on_light_and_dark_pages() {
    for c in PALETTE {
        assert!(contrast(c, "#ffffff") >= 3.0 && contrast(c, "#121212") >= 3.0, "{c}");
    }
    let distinct: std::collections::BTreeSet<_> = PALETTE.iter().collect();
    assert_eq!(distinct.len(), PALETTE.len());
}

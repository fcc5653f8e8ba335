//! Element-by-element comparison of two `FileDescriptorSet`s.
//!
//! Every difference becomes one readable line naming the element by its full
//! path, e.g. `flow.Flow.uuid: number 34 expected, 35 found`, so a failing
//! compatibility test says exactly what to fix.

use std::collections::BTreeMap;
use std::fmt::Debug;

use prost_types::{
    DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorProto, FileDescriptorSet,
    ServiceDescriptorProto,
    descriptor_proto::ReservedRange,
    enum_descriptor_proto::EnumReservedRange,
    field_descriptor_proto::{Label, Type},
};

/// Differences between `expected` and `found`, restricted to files whose package is in `packages`.
pub fn diff(expected: &FileDescriptorSet, found: &FileDescriptorSet, packages: &[&str]) -> Vec<String> {
    let mut out = Differences::default();
    let wanted =
        |f: &&FileDescriptorProto| packages.contains(&f.package()) || f.package().is_empty() && packages.is_empty();
    let expected_files = by_name(expected.file.iter().filter(wanted), |f| f.name());
    let found_files = by_name(found.file.iter().filter(wanted), |f| f.name());
    out.pair("file", "", &expected_files, &found_files, |out, path, e, f| {
        out.file(path, e, f)
    });
    out.lines
}

#[derive(Default)]
struct Differences {
    lines: Vec<String>,
}

fn by_name<'a, T, I: Iterator<Item = &'a T>>(items: I, name: impl Fn(&T) -> &str) -> BTreeMap<String, &'a T>
where
    T: 'a,
{
    items.map(|item| (name(item).to_owned(), item)).collect()
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

impl Differences {
    fn check<T: PartialEq + Debug>(&mut self, path: &str, what: &str, expected: T, found: T) {
        if expected != found {
            self.lines
                .push(format!("{path}: {what} {expected:?} expected, {found:?} found"));
        }
    }

    /// Matches `expected` and `found` by name, reports the missing and the
    /// unexpected, and compares the pairs with `compare`.
    fn pair<T>(
        &mut self,
        kind: &str,
        prefix: &str,
        expected: &BTreeMap<String, &T>,
        found: &BTreeMap<String, &T>,
        mut compare: impl FnMut(&mut Self, &str, &T, &T),
    ) {
        for (name, e) in expected {
            let path = join(prefix, name);
            match found.get(name) {
                Some(f) => compare(self, &path, e, f),
                None => self.lines.push(format!("{path}: {kind} missing")),
            }
        }
        for name in found.keys().filter(|name| !expected.contains_key(*name)) {
            self.lines.push(format!("{}: unexpected {kind}", join(prefix, name)));
        }
    }

    fn file(&mut self, path: &str, e: &FileDescriptorProto, f: &FileDescriptorProto) {
        self.check(path, "package", e.package(), f.package());
        self.check(path, "syntax", e.syntax(), f.syntax());
        self.check(path, "imports", &e.dependency, &f.dependency);
        self.check(path, "public imports", public_imports(e), public_imports(f));
        let scope = e.package();
        self.messages(scope, &e.message_type, &f.message_type);
        self.enums(scope, &e.enum_type, &f.enum_type);
        let (es, fs) = (
            by_name(e.service.iter(), |s| s.name()),
            by_name(f.service.iter(), |s| s.name()),
        );
        self.pair("service", scope, &es, &fs, |out, path, e, f| out.service(path, e, f));
    }

    fn messages(&mut self, scope: &str, expected: &[DescriptorProto], found: &[DescriptorProto]) {
        let (e, f) = (
            by_name(expected.iter(), |m| m.name()),
            by_name(found.iter(), |m| m.name()),
        );
        self.pair("message", scope, &e, &f, |out, path, e, f| out.message(path, e, f));
    }

    fn enums(&mut self, scope: &str, expected: &[EnumDescriptorProto], found: &[EnumDescriptorProto]) {
        let (e, f) = (
            by_name(expected.iter(), |m| m.name()),
            by_name(found.iter(), |m| m.name()),
        );
        self.pair("enum", scope, &e, &f, |out, path, e, f| out.enumeration(path, e, f));
    }

    fn message(&mut self, path: &str, e: &DescriptorProto, f: &DescriptorProto) {
        let deprecated = |m: &DescriptorProto| m.options.as_ref().is_some_and(|o| o.deprecated());
        self.check(path, "deprecated", deprecated(e), deprecated(f));
        self.check(path, "oneofs", real_oneofs(e), real_oneofs(f));
        self.check(
            path,
            "reserved ranges",
            reserved(&e.reserved_range),
            reserved(&f.reserved_range),
        );
        self.check(path, "reserved names", &e.reserved_name, &f.reserved_name);
        let (ef, ff) = (
            by_name(e.field.iter(), |x| x.name()),
            by_name(f.field.iter(), |x| x.name()),
        );
        self.pair("field", path, &ef, &ff, |out, fpath, ex, fx| {
            out.field(fpath, (e, ex), (f, fx))
        });
        self.messages(path, &e.nested_type, &f.nested_type);
        self.enums(path, &e.enum_type, &f.enum_type);
    }

    fn field(
        &mut self,
        path: &str,
        (e_owner, e): (&DescriptorProto, &FieldDescriptorProto),
        (f_owner, f): (&DescriptorProto, &FieldDescriptorProto),
    ) {
        self.check(path, "number", e.number(), f.number());
        self.check(path, "type", e.r#type(), f.r#type());
        if matches!(e.r#type(), Type::Message | Type::Enum | Type::Group) {
            self.check(path, "type name", e.type_name(), f.type_name());
        }
        self.check(path, "label", label(e), label(f));
        self.check(path, "proto3 optional", e.proto3_optional(), f.proto3_optional());
        self.check(path, "oneof", oneof_name(e_owner, e), oneof_name(f_owner, f));
        self.check(path, "json name", e.json_name(), f.json_name());
        let deprecated = |x: &FieldDescriptorProto| x.options.as_ref().is_some_and(|o| o.deprecated());
        self.check(path, "deprecated", deprecated(e), deprecated(f));
    }

    fn enumeration(&mut self, path: &str, e: &EnumDescriptorProto, f: &EnumDescriptorProto) {
        let deprecated = |x: &EnumDescriptorProto| x.options.as_ref().is_some_and(|o| o.deprecated());
        self.check(path, "deprecated", deprecated(e), deprecated(f));
        self.check(
            path,
            "reserved ranges",
            enum_reserved(&e.reserved_range),
            enum_reserved(&f.reserved_range),
        );
        self.check(path, "reserved names", &e.reserved_name, &f.reserved_name);
        // Enum values live in the enclosing scope in protobuf, but are named under
        // the enum here so a message says which enum they belong to.
        let (ev, fv) = (
            by_name(e.value.iter(), |v| v.name()),
            by_name(f.value.iter(), |v| v.name()),
        );
        self.pair("enum value", path, &ev, &fv, |out, vpath, e, f| {
            out.check(vpath, "number", e.number(), f.number());
            let deprecated =
                |x: &prost_types::EnumValueDescriptorProto| x.options.as_ref().is_some_and(|o| o.deprecated());
            out.check(vpath, "deprecated", deprecated(e), deprecated(f));
        });
    }

    fn service(&mut self, path: &str, e: &ServiceDescriptorProto, f: &ServiceDescriptorProto) {
        let (em, fm) = (
            by_name(e.method.iter(), |m| m.name()),
            by_name(f.method.iter(), |m| m.name()),
        );
        self.pair("method", path, &em, &fm, |out, mpath, e, f| {
            out.check(mpath, "input type", e.input_type(), f.input_type());
            out.check(mpath, "output type", e.output_type(), f.output_type());
            out.check(mpath, "client streaming", e.client_streaming(), f.client_streaming());
            out.check(mpath, "server streaming", e.server_streaming(), f.server_streaming());
        });
    }
}

fn public_imports(file: &FileDescriptorProto) -> Vec<&str> {
    file.public_dependency
        .iter()
        .filter_map(|&i| {
            usize::try_from(i)
                .ok()
                .and_then(|i| file.dependency.get(i))
                .map(String::as_str)
        })
        .collect()
}

fn label(field: &FieldDescriptorProto) -> Label {
    field.label()
}

/// Oneofs declared in the source; proto3 `optional` adds synthetic ones that are
/// compared through the field's `proto3 optional` flag instead.
fn real_oneofs(message: &DescriptorProto) -> Vec<&str> {
    let synthetic: Vec<i32> = message
        .field
        .iter()
        .filter(|f| f.proto3_optional())
        .filter_map(|f| f.oneof_index)
        .collect();
    message
        .oneof_decl
        .iter()
        .enumerate()
        .filter(|(i, _)| !synthetic.iter().any(|s| usize::try_from(*s).ok() == Some(*i)))
        .map(|(_, o)| o.name())
        .collect()
}

fn oneof_name<'a>(owner: &'a DescriptorProto, field: &FieldDescriptorProto) -> Option<&'a str> {
    let index = usize::try_from(field.oneof_index?).ok()?;
    owner.oneof_decl.get(index).map(|o| o.name())
}

fn reserved(ranges: &[ReservedRange]) -> Vec<(i32, i32)> {
    ranges.iter().map(|r| (r.start(), r.end())).collect()
}

fn enum_reserved(ranges: &[EnumReservedRange]) -> Vec<(i32, i32)> {
    ranges.iter().map(|r| (r.start(), r.end())).collect()
}

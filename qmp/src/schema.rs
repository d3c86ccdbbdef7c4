//! The commands and events Kindling's monitor implements: argument
//! validation with QEMU's messages, `query-commands` and `query-qmp-schema`.

use serde_json::{json, Map, Value};

use crate::error::QmpError;

/// A QAPI builtin type an argument can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgType {
    /// `int` (QEMU accepts any JSON integer).
    Int,
    /// `str`.
    Str,
    /// `bool`.
    Bool,
    /// A list of strings.
    StrList,
}

impl ArgType {
    fn name(self) -> &'static str {
        match self {
            ArgType::Int => "int",
            ArgType::Str => "str",
            ArgType::Bool => "bool",
            ArgType::StrList => "[str]",
        }
    }

    fn expected(self) -> &'static str {
        match self {
            ArgType::Int => "integer",
            ArgType::Str => "string",
            ArgType::Bool => "boolean",
            ArgType::StrList => "array",
        }
    }

    fn accepts(self, v: &Value) -> bool {
        match self {
            ArgType::Int => v.is_i64() || v.is_u64(),
            ArgType::Str => v.is_string(),
            ArgType::Bool => v.is_boolean(),
            ArgType::StrList => v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
        }
    }
}

/// One argument of a command.
#[derive(Debug, Clone, Copy)]
pub struct Arg {
    /// Its name.
    pub name: &'static str,
    /// Its type.
    pub ty: ArgType,
    /// Whether it may be left out.
    pub optional: bool,
}

const fn req(name: &'static str, ty: ArgType) -> Arg {
    Arg {
        name,
        ty,
        optional: false,
    }
}

const fn opt(name: &'static str, ty: ArgType) -> Arg {
    Arg {
        name,
        ty,
        optional: true,
    }
}

/// One command.
#[derive(Debug, Clone, Copy)]
pub struct Command {
    /// Its name.
    pub name: &'static str,
    /// Its arguments, in QAPI order.
    pub args: &'static [Arg],
    /// Members of its return object (name, type), or the return type name.
    pub ret: Ret,
    /// Allowed out-of-band.
    pub allow_oob: bool,
}

/// What a command returns, for the schema.
#[derive(Debug, Clone, Copy)]
pub enum Ret {
    /// `{}`.
    Empty,
    /// A string.
    Str,
    /// An object with these (name, type) members.
    Object(&'static [(&'static str, &'static str)]),
    /// A list of objects with these members.
    List(&'static [(&'static str, &'static str)]),
}

use ArgType::{Bool, Int, Str, StrList};

/// Every command Kindling implements, in `query-commands` order.
pub const COMMANDS: &[Command] = &[
    Command {
        name: "qmp_capabilities",
        args: &[opt("enable", StrList)],
        ret: Ret::Empty,
        allow_oob: true,
    },
    Command {
        name: "query-version",
        args: &[],
        ret: Ret::Object(&[("qemu", "VersionTriple"), ("package", "str")]),
        allow_oob: false,
    },
    Command {
        name: "query-commands",
        args: &[],
        ret: Ret::List(&[("name", "str")]),
        allow_oob: false,
    },
    Command {
        name: "query-status",
        args: &[],
        ret: Ret::Object(&[("running", "bool"), ("status", "RunState")]),
        allow_oob: false,
    },
    Command {
        name: "query-name",
        args: &[],
        ret: Ret::Object(&[("name", "str")]),
        allow_oob: false,
    },
    Command {
        name: "query-uuid",
        args: &[],
        ret: Ret::Object(&[("UUID", "str")]),
        allow_oob: false,
    },
    Command {
        name: "query-target",
        args: &[],
        ret: Ret::Object(&[("arch", "str")]),
        allow_oob: false,
    },
    Command {
        name: "query-replay",
        args: &[],
        ret: Ret::Object(&[("mode", "str"), ("icount", "int")]),
        allow_oob: false,
    },
    Command {
        name: "x-query-boot-milestones",
        args: &[],
        ret: Ret::Object(&[
            ("boot", "int"),
            ("accel", "str"),
            ("figures", "str"),
            ("process-start-unix-us", "int"),
            ("milestones", "any"),
            ("markers-dropped", "int"),
        ]),
        allow_oob: false,
    },
    Command {
        name: "query-kvm",
        args: &[],
        ret: Ret::Object(&[("enabled", "bool"), ("present", "bool")]),
        allow_oob: false,
    },
    Command {
        name: "query-machines",
        args: &[opt("compat-props", Bool)],
        ret: Ret::List(&[
            ("name", "str"),
            ("cpu-max", "int"),
            ("hotpluggable-cpus", "bool"),
            ("numa-mem-supported", "bool"),
            ("deprecated", "bool"),
            ("acpi", "bool"),
        ]),
        allow_oob: false,
    },
    Command {
        name: "query-cpus-fast",
        args: &[],
        ret: Ret::List(&[
            ("cpu-index", "int"),
            ("qom-path", "str"),
            ("thread-id", "int"),
            ("target", "str"),
        ]),
        allow_oob: false,
    },
    Command {
        name: "query-chardev",
        args: &[],
        ret: Ret::List(&[
            ("label", "str"),
            ("filename", "str"),
            ("frontend-open", "bool"),
        ]),
        allow_oob: false,
    },
    Command {
        name: "query-block",
        args: &[],
        ret: Ret::List(&[
            ("device", "str"),
            ("type", "str"),
            ("removable", "bool"),
            ("locked", "bool"),
        ]),
        allow_oob: false,
    },
    Command {
        name: "query-qmp-schema",
        args: &[],
        ret: Ret::List(&[("name", "str"), ("meta-type", "str")]),
        allow_oob: false,
    },
    Command {
        name: "stop",
        args: &[],
        ret: Ret::Empty,
        allow_oob: false,
    },
    Command {
        name: "cont",
        args: &[],
        ret: Ret::Empty,
        allow_oob: false,
    },
    Command {
        name: "system_reset",
        args: &[],
        ret: Ret::Empty,
        allow_oob: false,
    },
    Command {
        name: "system_powerdown",
        args: &[],
        ret: Ret::Empty,
        allow_oob: false,
    },
    Command {
        name: "quit",
        args: &[],
        ret: Ret::Empty,
        allow_oob: false,
    },
    Command {
        name: "inject-nmi",
        args: &[],
        ret: Ret::Empty,
        allow_oob: false,
    },
    Command {
        name: "pmemsave",
        args: &[req("val", Int), req("size", Int), req("filename", Str)],
        ret: Ret::Empty,
        allow_oob: false,
    },
    Command {
        name: "memsave",
        args: &[
            req("val", Int),
            req("size", Int),
            req("filename", Str),
            opt("cpu-index", Int),
        ],
        ret: Ret::Empty,
        allow_oob: false,
    },
    Command {
        name: "human-monitor-command",
        args: &[req("command-line", Str), opt("cpu-index", Int)],
        ret: Ret::Str,
        allow_oob: false,
    },
];

/// Events Kindling emits, with their data members.
pub const EVENTS: &[(&str, &[(&str, &str)])] = &[
    (
        "SHUTDOWN",
        &[("guest", "bool"), ("reason", "ShutdownCause")],
    ),
    ("POWERDOWN", &[]),
    ("RESET", &[("guest", "bool"), ("reason", "ShutdownCause")]),
    ("STOP", &[]),
    ("RESUME", &[]),
    // Kindling's boot milestones (`x-query-boot-milestones` has the list).
    (
        "X_BOOT_MILESTONE",
        &[("boot", "int"), ("name", "str"), ("t-us", "int")],
    ),
];

/// Look a command up.
pub fn command(name: &str) -> Option<&'static Command> {
    COMMANDS.iter().find(|c| c.name == name)
}

/// Check `args` against the command's arguments, in QEMU's order and words.
pub fn validate(cmd: &Command, args: &Map<String, Value>) -> Result<(), QmpError> {
    for a in cmd.args {
        match args.get(a.name) {
            None if !a.optional => {
                return Err(QmpError::generic(format!(
                    "Parameter '{}' is missing",
                    a.name
                )))
            }
            Some(v) if !a.ty.accepts(v) => {
                return Err(QmpError::generic(format!(
                    "Invalid parameter type for '{}', expected: {}",
                    a.name,
                    a.ty.expected()
                )))
            }
            _ => {}
        }
    }
    if let Some(extra) = args.keys().find(|k| !cmd.args.iter().any(|a| a.name == *k)) {
        return Err(QmpError::generic(format!(
            "Parameter '{extra}' is unexpected"
        )));
    }
    Ok(())
}

/// `query-commands`.
pub fn query_commands() -> Value {
    Value::Array(COMMANDS.iter().map(|c| json!({"name": c.name})).collect())
}

/// `query-qmp-schema`, in QEMU's SchemaInfo shape (object types get
/// numeric names, as QEMU masks them).
pub fn query_qmp_schema() -> Value {
    let mut out = Vec::new();
    let mut objects: Vec<Value> = Vec::new();
    let mut object = |members: Vec<Value>| -> String {
        let name = objects.len().to_string();
        objects.push(json!({"name": name, "meta-type": "object", "members": members}));
        name
    };
    let empty = object(vec![]);
    for c in COMMANDS {
        let arg_type = if c.args.is_empty() {
            empty.clone()
        } else {
            object(
                c.args
                    .iter()
                    .map(|a| {
                        let mut m = json!({"name": a.name, "type": a.ty.name()});
                        if a.optional {
                            m["default"] = Value::Null;
                        }
                        m
                    })
                    .collect(),
            )
        };
        let members = |ms: &[(&str, &str)]| -> Vec<Value> {
            ms.iter()
                .map(|(n, t)| json!({"name": n, "type": t}))
                .collect()
        };
        let ret_type = match c.ret {
            Ret::Empty => empty.clone(),
            Ret::Str => "str".to_string(),
            Ret::Object(ms) => object(members(ms)),
            Ret::List(ms) => {
                let elem = object(members(ms));
                format!("[{elem}]")
            }
        };
        let mut info = json!({"name": c.name, "meta-type": "command", "arg-type": arg_type, "ret-type": ret_type});
        if c.allow_oob {
            info["allow-oob"] = Value::Bool(true);
        }
        out.push(info);
    }
    for (name, data) in EVENTS {
        let arg_type = if data.is_empty() {
            empty.clone()
        } else {
            object(
                data.iter()
                    .map(|(n, t)| json!({"name": n, "type": t}))
                    .collect(),
            )
        };
        out.push(json!({"name": name, "meta-type": "event", "arg-type": arg_type}));
    }
    out.extend(objects);
    for b in [
        ("int", "int"),
        ("str", "string"),
        ("bool", "boolean"),
        ("any", "value"),
    ] {
        out.push(json!({"name": b.0, "meta-type": "builtin", "json-type": b.1}));
    }
    out.push(json!({"name": "RunState", "meta-type": "enum", "values": ["debug", "inmigrate", "internal-error", "io-error", "paused", "postmigrate", "prelaunch", "finish-migrate", "restore-vm", "running", "save-vm", "shutdown", "suspended", "watchdog", "guest-panicked", "colo"]}));
    out.push(json!({"name": "ShutdownCause", "meta-type": "enum", "values": ["none", "host-error", "host-qmp-quit", "host-qmp-system-reset", "host-signal", "host-ui", "guest-shutdown", "guest-reset", "guest-panic", "subsystem-reset", "snapshot-load"]}));
    out.push(json!({"name": "VersionTriple", "meta-type": "object", "members": [{"name": "major", "type": "int"}, {"name": "minor", "type": "int"}, {"name": "micro", "type": "int"}]}));
    out.push(json!({"name": "[str]", "meta-type": "array", "element-type": "str"}));
    Value::Array(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn validation_matches_qemus_messages_and_order() {
        let pmemsave = command("pmemsave").unwrap();
        assert_eq!(
            validate(pmemsave, &args(json!({"val": 1})))
                .unwrap_err()
                .desc,
            "Parameter 'size' is missing"
        );
        assert_eq!(
            validate(
                pmemsave,
                &args(json!({"val": "x", "size": 1, "filename": "/f"}))
            )
            .unwrap_err()
            .desc,
            "Invalid parameter type for 'val', expected: integer"
        );
        assert_eq!(
            validate(
                pmemsave,
                &args(json!({"val": 1, "size": 1, "filename": "/f", "zz": 1}))
            )
            .unwrap_err()
            .desc,
            "Parameter 'zz' is unexpected"
        );
        assert!(validate(
            pmemsave,
            &args(json!({"val": 1, "size": 1, "filename": "/f"}))
        )
        .is_ok());
        assert!(validate(command("stop").unwrap(), &args(json!({}))).is_ok());
    }

    #[test]
    fn schema_lists_every_command_and_event_with_resolvable_types() {
        let s = query_qmp_schema();
        let all = s.as_array().unwrap();
        let names: Vec<&str> = all.iter().filter_map(|e| e["name"].as_str()).collect();
        for c in COMMANDS {
            assert!(names.contains(&c.name), "{}", c.name);
        }
        for (e, _) in EVENTS {
            assert!(names.contains(e), "{e}");
        }
        for e in all.iter().filter(|e| e["meta-type"] == "command") {
            for key in ["arg-type", "ret-type"] {
                let t = e[key].as_str().unwrap();
                let t = t.trim_start_matches('[').trim_end_matches(']');
                assert!(names.contains(&t), "{} {key} {t} unresolved", e["name"]);
            }
        }
        assert_eq!(query_commands().as_array().unwrap().len(), COMMANDS.len());
    }
}

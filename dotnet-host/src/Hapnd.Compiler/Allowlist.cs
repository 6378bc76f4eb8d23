using System.Security.Cryptography;
using System.Text;

namespace Hapnd.Compiler;

/// <summary>Which gate asks: what user source may name, or what the emitted DLL may reference.</summary>
internal enum Gate
{
    Source,
    Metadata,
}

/// <summary>Why a symbol was refused: the text users read.</summary>
internal sealed record Refusal(string Symbol, string Reason);

/// <summary>
/// The API allowlist (<c>policy/csharp-allowlist.txt</c>, whose header documents the syntax), parsed. Everything is
/// refused unless a rule allows it; deny rules win over allows; <c>emitted</c> and <c>internal</c> rules widen only
/// the metadata gate. Names are metadata names: namespace, then <c>Type`N</c>, nested types after <c>+</c>.
/// </summary>
internal sealed class Allowlist
{
    private const string PrivateImplementationDetails = "<PrivateImplementationDetails>";

    private readonly HashSet<string> _namespaces = new(StringComparer.Ordinal);
    private readonly HashSet<string> _types = new(StringComparer.Ordinal);
    private readonly HashSet<string> _members = new(StringComparer.Ordinal);
    private readonly HashSet<string> _memberTypes = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _denied = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _deniedAnyType = new(StringComparer.Ordinal);
    private readonly HashSet<string> _emitted = new(StringComparer.Ordinal);
    private readonly HashSet<string> _emittedTypes = new(StringComparer.Ordinal);
    private readonly HashSet<string> _internal = new(StringComparer.Ordinal);
    private readonly HashSet<string> _internalTypes = new(StringComparer.Ordinal);
    private readonly List<(string Prefix, string Text)> _hints = [];

    private Allowlist(string hash) => Hash = hash;

    /// <summary>The SHA-256 of the file's text, lowercase hex: recorded in every artifact.</summary>
    public string Hash { get; }

    /// <summary>Parses the allowlist, or throws <see cref="FormatException"/> naming the line.</summary>
    public static Allowlist Parse(string text)
    {
        var list = new Allowlist(Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text))));
        string? group = null;
        var groupHasWhy = false;
        var lineNumber = 0;
        foreach (var rawLine in text.Split('\n'))
        {
            lineNumber++;
            var line = rawLine.Trim();
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }
            var space = line.IndexOf(' ');
            var verb = space < 0 ? line : line[..space];
            var rest = space < 0 ? "" : line[(space + 1)..].Trim();
            FormatException Bad(string why) => new($"allowlist line {lineNumber}: {why}: {line}");
            switch (verb)
            {
                case "group":
                    group = rest.Length > 0 ? rest : throw Bad("a group needs a name");
                    groupHasWhy = false;
                    continue;
                case "why":
                    if (group is null || rest.Length == 0)
                    {
                        throw Bad("`why` needs a group and a text");
                    }
                    groupHasWhy = true;
                    continue;
                case "hint":
                    var (prefix, hintText) = SplitInstead(rest) ?? throw Bad("`hint` needs `NAMESPACE : TEXT`");
                    list._hints.Add((prefix, hintText));
                    continue;
            }
            if (group is null || !groupHasWhy)
            {
                throw Bad("every rule belongs to a group that says why");
            }
            if (rest.Length == 0 || rest.Contains(' ') && verb != "deny")
            {
                throw Bad("a rule names exactly one symbol");
            }
            switch (verb)
            {
                case "namespace":
                    list._namespaces.Add(rest);
                    break;
                case "type":
                    list._types.Add(rest);
                    break;
                case "member":
                    list._members.Add(rest);
                    list._memberTypes.Add(TypeOf(rest) ?? throw Bad("`member` needs TYPE.MEMBER"));
                    break;
                case "emitted":
                    list._emitted.Add(rest);
                    if (TypeOf(rest) is { } emittedType)
                    {
                        list._emittedTypes.Add(emittedType);
                    }
                    break;
                case "internal":
                    list._internal.Add(rest);
                    list._internalTypes.Add(TypeOf(rest) ?? throw Bad("`internal` needs TYPE.MEMBER"));
                    break;
                case "deny":
                    var (target, instead) = SplitInstead(rest) ?? throw Bad("`deny` needs `SYMBOL : INSTEAD`");
                    if (target.StartsWith("*.", StringComparison.Ordinal))
                    {
                        list._deniedAnyType[target[2..]] = instead;
                    }
                    else
                    {
                        list._denied[target] = instead;
                    }
                    break;
                default:
                    throw Bad($"unknown rule `{verb}`");
            }
        }
        return list;
    }

    /// <summary>Whether the type may be named (in the source) or referenced (in the DLL), or why not.</summary>
    public Refusal? CheckType(string typeName, Gate gate)
    {
        if (DeniedType(typeName) is { } instead)
        {
            return new Refusal(Display(typeName), instead);
        }
        if (TypeCovered(typeName) || _memberTypes.Contains(typeName))
        {
            return null;
        }
        if (gate == Gate.Metadata && (_emitted.Contains(typeName) || _emittedTypes.Contains(typeName)
            || _internalTypes.Contains(typeName)))
        {
            return null;
        }
        return new Refusal(Display(typeName), "it is not on the allowlist: " + HintFor(typeName));
    }

    /// <summary>
    /// Whether a member may be used. <paramref name="names"/> are the member's names (a property accessor's own name and
    /// its property's name); <paramref name="inPrivateImplementation"/> says the use is inside the compiler's
    /// <c>&lt;PrivateImplementationDetails&gt;</c> helpers (the metadata gate only).
    /// </summary>
    public Refusal? CheckMember(string typeName, IReadOnlyList<string> names, Gate gate, bool inPrivateImplementation = false)
    {
        var shown = Display(typeName) + "." + names[^1];
        if (gate == Gate.Metadata)
        {
            foreach (var name in names)
            {
                var full = typeName + "." + name;
                if (_emitted.Contains(full) || inPrivateImplementation && _internal.Contains(full))
                {
                    return null;
                }
            }
        }
        if (DeniedType(typeName) is { } typeInstead)
        {
            return new Refusal(Display(typeName), typeInstead);
        }
        foreach (var name in names)
        {
            if (_denied.TryGetValue(typeName + "." + name, out var instead) || _deniedAnyType.TryGetValue(name, out instead))
            {
                return new Refusal(shown, instead);
            }
        }
        if (TypeCovered(typeName))
        {
            return null;
        }
        foreach (var name in names)
        {
            if (_members.Contains(typeName + "." + name))
            {
                return null;
            }
        }
        if (!_memberTypes.Contains(typeName))
        {
            var typeRefusal = CheckType(typeName, Gate.Source);
            if (typeRefusal is not null)
            {
                return typeRefusal;
            }
        }
        return new Refusal(shown, "it is not on the allowlist: " + HintFor(typeName));
    }

    /// <summary>Whether a member is allowed only inside the compiler's private implementation helpers.</summary>
    public bool IsInternalOnly(string typeName, IReadOnlyList<string> names) =>
        names.Any(name => _internal.Contains(typeName + "." + name)) && CheckMember(typeName, names, Gate.Metadata) is not null;

    /// <summary>The name of the compiler's helper type that <c>internal</c> rules allow uses in.</summary>
    public static bool IsPrivateImplementationDetails(string typeName) =>
        typeName == PrivateImplementationDetails || typeName.StartsWith(PrivateImplementationDetails + "+", StringComparison.Ordinal);

    /// <summary>A metadata type name as users write it: no arity, nested types with a dot.</summary>
    public static string Display(string typeName)
    {
        var shown = new StringBuilder(typeName.Length);
        for (var i = 0; i < typeName.Length; i++)
        {
            var c = typeName[i];
            if (c == '`')
            {
                while (i + 1 < typeName.Length && char.IsAsciiDigit(typeName[i + 1]))
                {
                    i++;
                }
                continue;
            }
            shown.Append(c == '+' ? '.' : c);
        }
        return shown.ToString();
    }

    private bool TypeCovered(string typeName)
    {
        // A nested type is covered by its outermost type's rule or namespace.
        var outer = typeName;
        var plus = outer.IndexOf('+');
        if (plus >= 0)
        {
            outer = outer[..plus];
        }
        if (_types.Contains(outer) || _types.Contains(typeName))
        {
            return true;
        }
        var dot = outer.LastIndexOf('.');
        return dot > 0 && _namespaces.Contains(outer[..dot]);
    }

    private string? DeniedType(string typeName)
    {
        var current = typeName;
        while (true)
        {
            if (_denied.TryGetValue(current, out var instead))
            {
                return instead;
            }
            var plus = current.LastIndexOf('+');
            if (plus < 0)
            {
                return null;
            }
            current = current[..plus];
        }
    }

    private string HintFor(string typeName)
    {
        var shown = Display(typeName);
        var best = "";
        var text = "only pure computation is available";
        foreach (var (prefix, hintText) in _hints)
        {
            var matches = shown == prefix || shown.StartsWith(prefix + ".", StringComparison.Ordinal);
            if (matches && prefix.Length > best.Length)
            {
                best = prefix;
                text = hintText;
            }
        }
        return text;
    }

    private static (string, string)? SplitInstead(string rest)
    {
        var colon = rest.IndexOf(" : ", StringComparison.Ordinal);
        if (colon <= 0)
        {
            return null;
        }
        var target = rest[..colon].Trim();
        var text = rest[(colon + 3)..].Trim();
        return target.Length == 0 || text.Length == 0 || target.Contains(' ') ? null : (target, text);
    }

    /// <summary>The type part of <c>TYPE.MEMBER</c> (constructors are <c>TYPE..ctor</c>), or null for a bare name.</summary>
    private static string? TypeOf(string memberName)
    {
        foreach (var constructor in (string[])["..ctor", "..cctor"])
        {
            if (memberName.EndsWith(constructor, StringComparison.Ordinal))
            {
                return memberName[..^constructor.Length];
            }
        }
        var dot = memberName.LastIndexOf('.');
        return dot > 0 ? memberName[..dot] : null;
    }
}

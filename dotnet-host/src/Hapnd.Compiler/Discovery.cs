using Microsoft.CodeAnalysis;

namespace Hapnd.Compiler;

/// <summary>What an upload turned out to hold: its one reducer or projection.</summary>
internal sealed record Discovered(string Kind, string ClassName, string Identity, string StateType);

/// <summary>
/// Finds the upload's one reducer (<c>IReducer&lt;TState&gt;</c>) or projection (<c>IProjection&lt;TState&gt;</c>) class.
/// The worker creates it with its public parameterless constructor, so it must be a public, non-abstract, non-generic
/// class that has one.
/// </summary>
internal static class Discovery
{
    private const string ContractsNamespace = "Hapnd.Projections.Contracts";

    public static (Discovered? Found, List<CompileDiagnostic> Problems) Find(Compilation compilation)
    {
        var problems = new List<CompileDiagnostic>();
        var candidates = new List<(INamedTypeSymbol Type, string Kind, ITypeSymbol State)>();
        foreach (var type in AllTypes(compilation.Assembly.GlobalNamespace))
        {
            foreach (var @interface in type.Interfaces)
            {
                var definition = @interface.OriginalDefinition;
                if (definition.ContainingNamespace?.ToDisplayString() != ContractsNamespace || @interface.TypeArguments.Length != 1)
                {
                    continue;
                }
                var kind = definition.MetadataName switch
                {
                    "IReducer`1" => "reducer",
                    "IProjection`1" => "projection",
                    _ => null,
                };
                if (kind is not null)
                {
                    candidates.Add((type, kind, @interface.TypeArguments[0]));
                }
            }
        }
        var distinct = candidates.Select(c => c.Type).Distinct(SymbolEqualityComparer.Default).Count();
        if (distinct == 0)
        {
            problems.Add(CompileDiagnostic.Error(Codes.Entry,
                "the upload has no reducer or projection: declare one public class implementing IReducer<TState> or IProjection<TState>"));
            return (null, problems);
        }
        if (distinct > 1 || candidates.Count > 1)
        {
            var names = string.Join(", ", candidates.Select(c => $"{c.Type.ToDisplayString()} ({c.Kind})").Distinct());
            problems.Add(CompileDiagnostic.Error(Codes.Entry,
                $"the upload has more than one reducer or projection: {names}; upload each separately"));
            return (null, problems);
        }
        var (found, foundKind, state) = candidates[0];
        var location = found.Locations.FirstOrDefault() ?? Location.None;
        if (found.DeclaredAccessibility != Accessibility.Public || found.IsAbstract || found.IsGenericType
            || found.ContainingType is not null && found.ContainingType.DeclaredAccessibility != Accessibility.Public)
        {
            problems.Add(CompileDiagnostic.FromLocation(location, "error", Codes.Entry,
                $"the {foundKind} '{found.ToDisplayString()}' must be a public, non-abstract, non-generic class"));
        }
        if (!found.InstanceConstructors.Any(c => c.Parameters.Length == 0 && c.DeclaredAccessibility == Accessibility.Public))
        {
            problems.Add(CompileDiagnostic.FromLocation(location, "error", Codes.Entry,
                $"the {foundKind} '{found.ToDisplayString()}' needs a public constructor without parameters"));
        }
        var identity = found.GetAttributes()
            .Where(a => a.AttributeClass?.ToDisplayString() == ContractsNamespace + ".ProjectionNameAttribute")
            .Select(a => a.ConstructorArguments.FirstOrDefault().Value as string)
            .FirstOrDefault(name => !string.IsNullOrWhiteSpace(name));
        var className = SemanticGate.MetadataName(found);
        return (new Discovered(foundKind, className, identity ?? className, state.ToDisplayString()), problems);
    }

    private static IEnumerable<INamedTypeSymbol> AllTypes(INamespaceSymbol ns)
    {
        foreach (var member in ns.GetMembers())
        {
            if (member is INamespaceSymbol inner)
            {
                foreach (var type in AllTypes(inner))
                {
                    yield return type;
                }
            }
            else if (member is INamedTypeSymbol type)
            {
                foreach (var nested in WithNested(type))
                {
                    yield return nested;
                }
            }
        }
    }

    private static IEnumerable<INamedTypeSymbol> WithNested(INamedTypeSymbol type)
    {
        yield return type;
        foreach (var nested in type.GetTypeMembers().SelectMany(WithNested))
        {
            yield return nested;
        }
    }
}

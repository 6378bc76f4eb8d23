namespace Hapnd.Compiler;

/// <summary>The codes of Hapnd's own diagnostics; Roslyn's keep their CS codes.</summary>
internal static class Codes
{
    // Gate 1: the source, through Roslyn's semantic model.
    public const string NotAllowed = "HAPND001";
    public const string Unsafe = "HAPND003";
    public const string Dynamic = "HAPND004";
    public const string ReservedNamespace = "HAPND005";
    public const string AssemblyAttribute = "HAPND006";
    public const string Finalizer = "HAPND007";
    public const string Extern = "HAPND008";
    public const string ArgList = "HAPND009";
    public const string Directive = "HAPND010";
    public const string AsyncDelegate = "HAPND011";

    // The upload itself.
    public const string Limits = "HAPND020";
    public const string Entry = "HAPND021";
    public const string ProjectFileIgnored = "HAPND022";

    // Gate 2: the emitted DLL, through System.Reflection.Metadata.
    public const string TypeReference = "HAPND101";
    public const string MemberReference = "HAPND102";
    public const string PlatformInvoke = "HAPND103";
    public const string Opcode = "HAPND104";
    public const string ExplicitLayout = "HAPND105";
    public const string AssemblyAttributeInDll = "HAPND106";
    public const string FinalizerInDll = "HAPND107";
    public const string ModuleInitializer = "HAPND108";
    public const string BodylessMethod = "HAPND109";
    public const string AssemblyReference = "HAPND110";
    public const string ReservedNamespaceInDll = "HAPND111";
    public const string AsyncDelegateInDll = "HAPND112";
    public const string ForbiddenTable = "HAPND113";
    public const string Compiler = "HAPND199";
}

/// <summary>One diagnostic as the supervisor receives it; file, line and column are 1-based when known.</summary>
internal sealed record CompileDiagnostic(string Severity, string Code, string Message, string? File, int? Line, int? Column)
{
    public static CompileDiagnostic Error(string code, string message) => new("error", code, message, null, null, null);

    public static CompileDiagnostic At(string file, int line, int column, string code, string message) =>
        new("error", code, message, file, line, column);

    public static CompileDiagnostic FromLocation(Microsoft.CodeAnalysis.Location location, string severity, string code, string message)
    {
        if (!location.IsInSource)
        {
            return new CompileDiagnostic(severity, code, message, null, null, null);
        }
        var span = location.GetLineSpan();
        return new CompileDiagnostic(severity, code, message, span.Path, span.StartLinePosition.Line + 1,
            span.StartLinePosition.Character + 1);
    }

    public bool IsError => Severity == "error";
}

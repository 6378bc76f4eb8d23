namespace Hapnd.Compiler.Tests;

/// <summary>Files of the repository the tests read: the allowlist and the C# fixtures.</summary>
internal static class Repository
{
    public static string Root { get; } = FindRoot();

    public static Allowlist Allowlist { get; } = Allowlist.Parse(File.ReadAllText(Path.Combine(Root, "policy", "csharp-allowlist.txt")));

    public static UploadCompiler Compiler { get; } =
        UploadCompiler.ForThisRuntime(Path.Combine(AppContext.BaseDirectory, "Hapnd.Projections.Contracts.dll"));

    public static IEnumerable<string> Fixtures(string folder) =>
        Directory.EnumerateFiles(Path.Combine(Root, "tests", folder), "*.cs").Order(StringComparer.Ordinal);

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "policy", "csharp-allowlist.txt")))
            {
                return dir.FullName;
            }
        }
        throw new InvalidOperationException("the repository root (with policy/csharp-allowlist.txt) is not above the test's folder");
    }
}

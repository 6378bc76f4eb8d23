using System.Text.Json;
using Hapnd.Compiler;
using Hapnd.Protocol;

// The compiler worker: started by the supervisor inside the jail, it speaks the framed protocol on standard input and
// output and compiles one upload per request. Nothing but frames reaches standard output.
var input = Console.OpenStandardInput();
var output = Console.OpenStandardOutput();
Console.SetOut(TextWriter.Null);

var contracts = Path.Combine(AppContext.BaseDirectory, "Hapnd.Projections.Contracts.dll");
var compiler = UploadCompiler.ForThisRuntime(contracts);
compiler.WarmUp();

var frames = new Frames(input, output);
var service = new CompileService(compiler);
frames.SendHello();
try
{
    while (frames.ReadFrame() is { } frame)
    {
        service.Handle(frames, frame);
    }
}
catch (ProtocolException error)
{
    Console.Error.WriteLine($"hapnd compiler: {error.Message}");
    return 2;
}
return 0;

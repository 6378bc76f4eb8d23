using System.Reflection;
using System.Reflection.Emit;
using System.Reflection.Metadata;

namespace Hapnd.Compiler;

/// <summary>
/// Walks a method body's IL opcode by opcode (operands skipped by their real size, so operand bytes are never
/// mistaken for opcodes) and yields each opcode with its token operand, if any.
/// </summary>
internal static class IlScanner
{
    private static readonly OpCode?[] OneByte = new OpCode?[256];
    private static readonly OpCode?[] TwoByte = new OpCode?[256];

    static IlScanner()
    {
        // The runtime's own table of opcodes: every opcode with its operand type, nothing to keep in sync by hand.
        foreach (var field in typeof(OpCodes).GetFields(BindingFlags.Public | BindingFlags.Static))
        {
            if (field.GetValue(null) is not OpCode opCode)
            {
                continue;
            }
            var value = (ushort)opCode.Value;
            if (opCode.Size == 1)
            {
                OneByte[value] = opCode;
            }
            else
            {
                TwoByte[value & 0xFF] = opCode;
            }
        }
    }

    /// <summary>One instruction: its opcode and, for token operands, the metadata token.</summary>
    public readonly record struct Instruction(OpCode OpCode, int Offset, int? Token);

    /// <summary>The instructions of <paramref name="il"/>, or an exception when the IL is malformed.</summary>
    public static IEnumerable<Instruction> Scan(BlobReader il)
    {
        while (il.RemainingBytes > 0)
        {
            var offset = il.Offset;
            var first = il.ReadByte();
            OpCode? opCode = first == 0xFE ? TwoByte[il.ReadByte()] : OneByte[first];
            if (opCode is not { } op)
            {
                throw new BadImageFormatException($"unknown opcode at IL offset {offset}");
            }
            int? token = null;
            switch (op.OperandType)
            {
                case OperandType.InlineNone:
                    break;
                case OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar:
                    il.ReadByte();
                    break;
                case OperandType.InlineVar:
                    il.ReadInt16();
                    break;
                case OperandType.InlineField or OperandType.InlineMethod or OperandType.InlineTok or OperandType.InlineType
                    or OperandType.InlineSig or OperandType.InlineString:
                    token = il.ReadInt32();
                    break;
                case OperandType.InlineBrTarget or OperandType.InlineI or OperandType.ShortInlineR:
                    il.ReadInt32();
                    break;
                case OperandType.InlineI8 or OperandType.InlineR:
                    il.ReadInt64();
                    break;
                case OperandType.InlineSwitch:
                    var count = il.ReadUInt32();
                    if (count > (uint)il.RemainingBytes / 4)
                    {
                        throw new BadImageFormatException($"a switch at IL offset {offset} runs past the body");
                    }
                    for (var i = 0; i < count; i++)
                    {
                        il.ReadInt32();
                    }
                    break;
                default:
                    throw new BadImageFormatException($"unexpected operand type {op.OperandType} at IL offset {offset}");
            }
            yield return new Instruction(op, offset, token);
        }
    }
}

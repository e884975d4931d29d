//go:build amd64 && !purego

#include "textflag.h"

// ADDMUL8 adds x[0:8]·DX to z[0:8] (SI = x, DI = z) with the carry limb
// in BX: two independent carry chains, ADCX (CF) adding the high half of the
// previous product and ADOX (OF) adding z[i]. At the end both flags are
// folded into BX, which cannot overflow (z + x·y + carry < 2^(64·9)), so
// the caller's loop counter may clobber the flags. Clobbers AX, R8-R10.
#define ADDMUL8 \
	XORQ  AX, AX; \
	MULXQ 0(SI), R8, R9; \
	ADCXQ BX, R8; \
	ADOXQ 0(DI), R8; \
	MOVQ  R8, 0(DI); \
	MULXQ 8(SI), R10, BX; \
	ADCXQ R9, R10; \
	ADOXQ 8(DI), R10; \
	MOVQ  R10, 8(DI); \
	MULXQ 16(SI), R8, R9; \
	ADCXQ BX, R8; \
	ADOXQ 16(DI), R8; \
	MOVQ  R8, 16(DI); \
	MULXQ 24(SI), R10, BX; \
	ADCXQ R9, R10; \
	ADOXQ 24(DI), R10; \
	MOVQ  R10, 24(DI); \
	MULXQ 32(SI), R8, R9; \
	ADCXQ BX, R8; \
	ADOXQ 32(DI), R8; \
	MOVQ  R8, 32(DI); \
	MULXQ 40(SI), R10, BX; \
	ADCXQ R9, R10; \
	ADOXQ 40(DI), R10; \
	MOVQ  R10, 40(DI); \
	MULXQ 48(SI), R8, R9; \
	ADCXQ BX, R8; \
	ADOXQ 48(DI), R8; \
	MOVQ  R8, 48(DI); \
	MULXQ 56(SI), R10, BX; \
	ADCXQ R9, R10; \
	ADOXQ 56(DI), R10; \
	MOVQ  R10, 56(DI); \
	ADCXQ AX, BX; \
	ADOXQ AX, BX

// ADDMUL1 adds x[0]·DX to z[0] with the carry limb in BX, with ADD/ADC.
// Clobbers R8, R9.
#define ADDMUL1 \
	MULXQ 0(SI), R8, R9; \
	ADDQ  BX, R8; \
	ADCQ  $0, R9; \
	ADDQ  0(DI), R8; \
	ADCQ  $0, R9; \
	MOVQ  R8, 0(DI); \
	MOVQ  R9, BX

// func addMulVVWADX(z, x *uint64, n int, y uint64) (carry uint64)
//
// z[0:n] += x[0:n]·y, returning the carry limb: ADDMUL8 over blocks of 8
// limbs, then ADDMUL1 over the last n mod 8. sqrCrossADX and redcADX run
// the same loop once per row, so that a square costs one call, not 2k.
TEXT ·addMulVVWADX(SB), NOSPLIT, $0-40
	MOVQ z+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ y+24(FP), DX
	XORQ BX, BX
	CMPQ CX, $8
	JLT  tail

block:
	ADDMUL8
	ADDQ  $64, SI
	ADDQ  $64, DI
	SUBQ  $8, CX
	CMPQ  CX, $8
	JGE   block

tail:
	TESTQ CX, CX
	JZ    done

tailloop:
	ADDMUL1
	ADDQ  $8, SI
	ADDQ  $8, DI
	DECQ  CX
	JNZ   tailloop

done:
	MOVQ BX, carry+32(FP)
	RET

// func sqrCrossADX(t, a *uint64, k int)
//
// The cross products of a square: for i from 0 to k−2, t[2i+1 : i+k] +=
// a[i+1 : k]·a[i] and t[i+k] = the carry limb. t holds 2k limbs, zero on
// entry. Each row is the loop of addMulVVWADX.
TEXT ·sqrCrossADX(SB), NOSPLIT, $0-24
	MOVQ t+0(FP), R12
	ADDQ $8, R12 // &t[1]
	MOVQ a+8(FP), R13
	ADDQ $8, R13 // &a[1]
	MOVQ k+16(FP), R11
	DECQ R11     // row length k−1−i
	JLE  xend

xrow:
	MOVQ R12, DI
	MOVQ R13, SI
	MOVQ R11, CX
	MOVQ -8(R13), DX // a[i]
	XORQ BX, BX
	CMPQ CX, $8
	JLT  xtail

xblock:
	ADDMUL8
	ADDQ  $64, SI
	ADDQ  $64, DI
	SUBQ  $8, CX
	CMPQ  CX, $8
	JGE   xblock

xtail:
	TESTQ CX, CX
	JZ    xrowdone

xtailloop:
	ADDMUL1
	ADDQ  $8, SI
	ADDQ  $8, DI
	DECQ  CX
	JNZ   xtailloop

xrowdone:
	MOVQ BX, 0(DI) // t[i+k]
	ADDQ $16, R12
	ADDQ $8, R13
	DECQ R11
	JNZ  xrow

xend:
	RET

// func redcADX(t, n *uint64, k int, m0inv uint64) (c uint64)
//
// Montgomery reduction of the 2k-limb t: for i from 0 to k−1, y = t[i]·m0inv
// and t[i : i+k] += n·y, the carry limb added into t[i+k] with the carry bit
// of the previous row, whose last carry bit is returned. Afterwards t[0:k]
// is zero and (c, t[k:2k]) is t·R⁻¹ mod n, below 2n.
TEXT ·redcADX(SB), NOSPLIT, $0-40
	MOVQ t+0(FP), R12
	MOVQ n+8(FP), R13
	MOVQ k+16(FP), R11
	MOVQ $0, c+32(FP)

rrow:
	MOVQ m0inv+24(FP), DX
	IMULQ 0(R12), DX // y = t[i]·m0inv mod 2⁶⁴
	MOVQ R12, DI
	MOVQ R13, SI
	MOVQ k+16(FP), CX
	XORQ BX, BX
	CMPQ CX, $8
	JLT  rtail

rblock:
	ADDMUL8
	ADDQ  $64, SI
	ADDQ  $64, DI
	SUBQ  $8, CX
	CMPQ  CX, $8
	JGE   rblock

rtail:
	TESTQ CX, CX
	JZ    rrowdone

rtailloop:
	ADDMUL1
	ADDQ  $8, SI
	ADDQ  $8, DI
	DECQ  CX
	JNZ   rtailloop

rrowdone:
	// t[i+k], c = t[i+k] + carry limb + c
	MOVQ c+32(FP), AX
	BTQ  $0, AX
	ADCQ BX, 0(DI)
	SBBQ AX, AX
	NEGQ AX
	MOVQ AX, c+32(FP)
	ADDQ $8, R12
	DECQ R11
	JNZ  rrow
	RET
